//! libFuzzer target for the userspace query path: arbitrary bytes as a DNS
//! query to `Responder::answer`, over UDP and TCP, with the differential
//! test's configuration and answer state (`failover_tests::r#gen::feed`:
//! every endpoint healthy but those of the records that show SERVFAIL,
//! NODATA, fallback and fail-open answers; weighted records too).
//!
//! Properties: no panic; silence only for what must never be answered (under
//! 12 bytes, or QR=1); every response parses with hickory, has QR=1 and the
//! query's id, echoes the question name exactly (0x20) when it carries one,
//! and over UDP fits 512 bytes, or the query's EDNS size within 512..=1232.
//!
//! Run: `cargo xtask fuzz userspace [--seconds S]`.
#![no_main]

use std::sync::LazyLock;

use failover_agent::serve::{AnswerTable, Responder, Transport};
use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;

static RESPONDER: LazyLock<Responder> = LazyLock::new(|| {
    let config = failover_tests::r#gen::test_config();
    let mut table = AnswerTable::new();
    failover_tests::r#gen::feed(&config, &mut table).expect("fill the answer table");
    Responder::new(table)
});

fuzz_target!(|query: &[u8]| {
    let parsed = Message::from_vec(query).ok();
    for transport in [Transport::Udp, Transport::Tcp] {
        let Some(response) = RESPONDER.answer(query, transport) else {
            assert!(
                query.len() < 12 || query[2] & 0x80 != 0,
                "no answer to a query with a readable header ({transport:?})"
            );
            continue;
        };
        let message = Message::from_vec(&response)
            .unwrap_or_else(|e| panic!("the {transport:?} response does not parse: {e}"));
        assert_eq!(message.message_type(), MessageType::Response, "QR not set");
        assert_eq!(
            message.id(),
            u16::from_be_bytes([query[0], query[1]]),
            "id not echoed"
        );
        if let Some(question) = message.queries().first() {
            let asked = parsed
                .as_ref()
                .and_then(|q| q.queries().first())
                .expect("a response with a question answers a query that parses with one");
            assert_eq!(
                question.name().to_string(),
                asked.name().to_string(),
                "question name not echoed as sent"
            );
        }
        let limit = match transport {
            Transport::Tcp => usize::from(u16::MAX),
            Transport::Udp => parsed
                .as_ref()
                .and_then(|q| q.extensions().as_ref())
                .map_or(512, |e| usize::from(e.max_payload().clamp(512, 1232))),
        };
        assert!(
            response.len() <= limit,
            "{transport:?} response of {} bytes exceeds {limit}",
            response.len()
        );
    }
});
