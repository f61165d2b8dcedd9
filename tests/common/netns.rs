//! A test host of its own: a network namespace joined to this machine by a veth
//! pair, with its own address, made and removed by the test (needs root, `ip`
//! and, to block UDP, `nft`; scripts/test-peers.sh installs them).

use std::process::Command;

pub struct Host {
    pub name: String,
    /// This machine's end of the link.
    pub local_ip: String,
    /// The namespace's address.
    pub ip: String,
    veth: String,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Host {
    /// A namespace `tsr<n>` on 10.77.<n>.0/24 (n from the process id, so parallel test
    /// binaries do not collide). Panics with the exact reason when the machine refuses.
    pub fn create() -> Host {
        let n = std::process::id() % 200 + 20;
        let name = format!("tsr{n}");
        let veth = format!("vtsr{n}");
        let (local_ip, ip) = (format!("10.77.{n}.1"), format!("10.77.{n}.2"));
        // Left over from an earlier run that was killed.
        let _ = run(&["ip", "link", "del", &veth]);
        let _ = run(&["ip", "netns", "del", &name]);
        let peer = format!("{veth}p");
        let steps: Vec<Vec<String>> = vec![
            vec!["ip", "netns", "add", &name],
            vec!["ip", "link", "add", &veth, "type", "veth", "peer", "name", &peer],
            vec!["ip", "link", "set", &peer, "netns", &name],
            vec!["ip", "addr", "add", &format!("{local_ip}/24"), "dev", &veth],
            vec!["ip", "link", "set", &veth, "up"],
            vec!["ip", "netns", "exec", &name, "ip", "addr", "add", &format!("{ip}/24"), "dev", &peer],
            vec!["ip", "netns", "exec", &name, "ip", "link", "set", &peer, "up"],
            vec!["ip", "netns", "exec", &name, "ip", "link", "set", "lo", "up"],
        ]
        .into_iter()
        .map(|v| v.into_iter().map(String::from).collect())
        .collect();
        let host = Host { name, local_ip, ip, veth };
        for s in steps {
            let args: Vec<&str> = s.iter().map(String::as_str).collect();
            if let Err(e) = run(&args) {
                panic!("cannot make a test host (network namespace; needs root and iproute2): {e}");
            }
        }
        host
    }

    /// Drops every UDP packet in and out of the namespace but on its loopback: media
    /// must come over TCP (ICE-TCP) or not at all.
    pub fn block_udp(&self) {
        let ns = |rest: &[&str]| {
            let mut a = vec!["ip", "netns", "exec", &self.name, "nft"];
            a.extend_from_slice(rest);
            run(&a).unwrap_or_else(|e| panic!("cannot block UDP in the test host (needs nftables): {e}"))
        };
        ns(&["add", "table", "inet", "tessera"]);
        ns(&["add", "chain", "inet", "tessera", "in", "{ type filter hook input priority 0; }"]);
        ns(&["add", "chain", "inet", "tessera", "out", "{ type filter hook output priority 0; }"]);
        ns(&["add", "rule", "inet", "tessera", "in", "iifname", "!=", "lo", "meta", "l4proto", "udp", "drop"]);
        ns(&["add", "rule", "inet", "tessera", "out", "oifname", "!=", "lo", "meta", "l4proto", "udp", "drop"]);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = run(&["ip", "link", "del", &self.veth]);
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}
