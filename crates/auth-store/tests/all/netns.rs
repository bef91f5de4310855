//! Hosts apart: the fleet runs on test hosts made of network namespaces (a switch namespace
//! with a bridge, one namespace per host, a veth pair from each host to the switch), the store
//! server on a host of its own. One host's link is cut while another host's refresh is out,
//! then restored: the other hosts carry on, the cut host keeps serving its valid token and
//! rejoins on the newest one. Runs only as root with `ip` and network namespaces available,
//! and says why when it is skipped; the namespaces go when the test ends, failed or not.

use std::{
    collections::HashMap,
    fs,
    process::{Command, Stdio},
    time::Duration,
};

use crate::outage::{Fleet, RUN_MS, converged, wall_ms};

/// The test hosts of one run: namespaces named `kunci-<run>-<host>`.
struct Lab {
    run: String,
    subnet: String,
    hosts: Vec<String>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Lab {
    /// The switch and `hosts` hosts; `None` (with the reason printed) where this cannot run.
    fn new(test: &str, hosts: usize) -> Option<Self> {
        // The owner of `/proc/self` is this process's effective user.
        if fs::metadata("/proc/self").map_or(true, |m| std::os::unix::fs::MetadataExt::uid(&m) != 0)
        {
            eprintln!("{test}: skipped, making network namespaces needs root");
            return None;
        }
        if !crate::servers::have("ip") {
            eprintln!("{test}: skipped, `ip` (iproute2) is not installed");
            return None;
        }
        let run = format!("{:08x}", fastrand::u32(..));
        let mut lab = Self {
            subnet: format!("10.{}.{}", fastrand::u8(100..=250), fastrand::u8(1..=250)),
            run,
            hosts: Vec::new(),
        };
        if let Err(e) = lab.build(hosts) {
            eprintln!("{test}: skipped, network namespaces are not available here ({e})");
            return None;
        }
        Some(lab)
    }

    fn ns(&self, host: &str) -> String {
        format!("kunci-{}-{host}", self.run)
    }

    fn switch(&self) -> String {
        self.ns("sw")
    }

    fn build(&mut self, hosts: usize) -> Result<(), String> {
        let sw = self.switch();
        ip(&["netns", "add", &sw])?;
        self.hosts.push("sw".to_owned());
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for i in 0..=hosts {
            // Host 0 is the store's.
            let name = format!("h{i}");
            let ns = self.ns(&name);
            ip(&["netns", "add", &ns])?;
            self.hosts.push(name);
            let port = format!("v{i}");
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &port, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", self.addr(i)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    /// Host `i`'s address (host 0: the store).
    fn addr(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, 10 + i)
    }

    /// Takes host `i`'s link down (`up = false`) or up again, at the switch.
    fn link(&self, i: usize, up: bool) {
        ip(&[
            "-n",
            &self.switch(),
            "link",
            "set",
            &format!("v{i}"),
            if up { "up" } else { "down" },
        ])
        .unwrap();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for host in &self.hosts {
            let ns = self.ns(host);
            // Anything still running on the host (the test's own processes) goes with it.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = ip(&["netns", "del", &ns]);
        }
    }
}

/// Three client hosts, two processes each, the store on host 0. When the first refresh's
/// request is out, the link of a host that is not the requester's is cut for 2 s, then restored.
fn cut_a_host_mid_refresh(lab: &Lab, spec: &str, env: &[(String, String)], what: &str) {
    let hosts = [1usize, 1, 2, 2, 3, 3];
    let wrap: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            ["ip", "netns", "exec", &lab.ns(&format!("h{h}"))]
                .map(str::to_owned)
                .to_vec()
        })
        .collect();
    let specs = vec![spec.to_owned(); hosts.len()];
    let mut fleet = Fleet::serve(&specs, env, &wrap, RUN_MS);
    let host_of: HashMap<u32, usize> = fleet.pids().into_iter().zip(hosts).collect();
    fleet.wait_for_request(2);
    let requester = sender(&fleet, 2);
    let holder_host = host_of.get(&requester).copied().unwrap_or(1);
    let cut = (1..=3).find(|h| *h != holder_host).unwrap();
    lab.link(cut, false);
    let cut_ms = wall_ms();
    std::thread::sleep(Duration::from_millis(2000));
    lab.link(cut, true);
    let restored_ms = wall_ms();
    std::thread::sleep(Duration::from_secs(1));
    fleet.settle();
    let served = fleet.finish();
    converged(&fleet, &served, what);
    for (s, host) in served.iter().zip(hosts) {
        if host == cut {
            assert_eq!(
                s.errors, 0,
                "{what}: the cut host kept serving its valid token: {}",
                s.output
            );
            // The refreshed token was saved while the host was cut off: it could not see it
            // before its link came back.
            assert!(
                s.tokens
                    .iter()
                    .all(|(ms, _)| *ms < cut_ms || *ms > restored_ms),
                "{what}: the cut host got nothing while cut off ({cut_ms}–{restored_ms} ms): {}",
                s.output
            );
        }
    }
    eprintln!("{what}: host {cut} was cut off while host {holder_host}'s request was out");
}

/// The process whose request was the provider's `n`th (0 if none is seen within a second).
fn sender(fleet: &Fleet, n: u64) -> u32 {
    for _ in 0..100 {
        for entry in fs::read_dir(fleet.dir()).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if let Some(pid) = name.strip_prefix("sent-")
                && fs::read_to_string(fleet.dir().join(&name))
                    .is_ok_and(|t| t.trim() == n.to_string())
            {
                return pid.parse().unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    0
}

#[cfg(feature = "redis")]
#[test]
fn hosts_apart_on_redis_a_host_cut_off_mid_refresh_serves_its_token_and_rejoins() {
    let what = "hosts apart, redis";
    let Some(lab) = Lab::new(what, 3) else {
        return;
    };
    let Some(server) = crate::servers::RedisServer::start(&lab.addr(0), Some(&lab.ns("h0"))) else {
        eprintln!("{what}: skipped, no redis-server");
        return;
    };
    let env = vec![(
        "KUNCI_PROBE_REDIS_PREFIX".to_owned(),
        format!("kunci-test-{:016x}:", fastrand::u64(..)),
    )];
    cut_a_host_mid_refresh(&lab, &server.url(), &env, what);
    drop(server);
}

#[cfg(feature = "postgres")]
#[test]
fn hosts_apart_on_postgres_a_host_cut_off_mid_refresh_serves_its_token_and_rejoins() {
    let what = "hosts apart, postgres";
    let Some(lab) = Lab::new(what, 3) else {
        return;
    };
    let Some(cluster) = crate::servers::PgCluster::start(&lab.addr(0), Some(&lab.ns("h0"))) else {
        eprintln!("{what}: skipped, no PostgreSQL binaries");
        return;
    };
    // Another host than this machine: say plainly that the test server has no TLS.
    let spec = format!("{}?kunci_table=kunci_tokens&sslmode=disable", cluster.url());
    cut_a_host_mid_refresh(&lab, &spec, &[], what);
    drop(cluster);
}
