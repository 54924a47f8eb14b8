pub fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("bench xdp lands with the XDP responder")
}
