//! `kunci agent` and `kunci exec` driven by real clients — curl, Python's standard library,
//! Node's `http`, PHP's curl extension — against the simulators. The client programs are the
//! files in `tests/clients/`, the same code docs/agent.md shows.
//!
//! A client whose interpreter is missing is skipped with a printed reason, except under CI
//! (`CI` set), where `.ci/run` installs them and a missing one fails.

use std::{
    io::Read as _,
    os::unix::{fs::PermissionsExt as _, net::UnixDatagram, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use auth_testkit::{SimServer, stamps::StampsSim};
use serde_json::Value;

use crate::support::{Kunci, mode};

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Whether `program --version` runs; otherwise the test is skipped (or fails under CI).
#[allow(clippy::print_stderr, reason = "a skipped test says why")]
fn available(program: &str, check: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(check)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let reason = format!("`{program} {}` does not run here", check.join(" "));
        assert!(
            std::env::var_os("CI").is_none(),
            "{reason}: .ci/run installs it"
        );
        eprintln!("skipped: {reason} (.ci/run installs it)");
    }
    ok
}

/// A running agent.
struct Agent {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Agent {
    /// Starts `kunci agent --socket <home>/run/agent.sock ARGS` and waits for its readiness
    /// notification (systemd's protocol, on a datagram socket of the test's own).
    fn start(k: &Kunci, args: &[&str]) -> Self {
        let socket = k.path("run/agent.sock");
        let notify = k.path("notify.sock");
        let _ = std::fs::remove_file(&notify);
        let ready = UnixDatagram::bind(&notify).unwrap();
        ready
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let log = k.path(&format!("agent-{}.log", fastrand_suffix()));
        let mut cmd = k.command(&["agent", "--socket", socket.to_str().unwrap()]);
        cmd.args(args)
            .env("NOTIFY_SOCKET", &notify)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().unwrap();
        let mut buf = [0u8; 512];
        let n = ready.recv(&mut buf).unwrap_or_else(|e| {
            panic!(
                "no readiness notification: {e}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(message.starts_with("READY=1"), "{message}");
        Self { child, socket, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// SIGTERM, then the exit status (0) and the socket file removed.
    fn stop(mut self) -> String {
        self.signal(rustix::process::Signal::TERM);
        let status = wait_bounded(&mut self.child, Duration::from_secs(20));
        assert_eq!(status, Some(0), "clean exit on SIGTERM:\n{}", self.log());
        assert!(!self.socket.exists(), "the socket file is removed");
        self.log()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fastrand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn wait_bounded(child: &mut Child, bound: Duration) -> Option<i32> {
    let step = Duration::from_millis(50);
    let mut waited = Duration::ZERO;
    while waited < bound {
        if let Some(status) = child.try_wait().unwrap() {
            use std::os::unix::process::ExitStatusExt as _;
            return status.code().or(status.signal().map(|s| 128 + s));
        }
        std::thread::sleep(step);
        waited += step;
    }
    None
}

/// Runs a program to completion off the runtime (the simulators keep serving).
async fn output(mut cmd: Command) -> (i32, String, String) {
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `curl --unix-socket`: (status, body).
async fn curl(socket: &Path, args: &[&str]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "30", "--unix-socket"])
        .arg(socket)
        .args(["-w", "\n%{http_code}"])
        .args(args);
    let (code, stdout, stderr) = output(cmd).await;
    assert_eq!(code, 0, "curl failed: {stderr}");
    let (body, status) = stdout.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_owned())
}

fn stamps_env(k: &mut Kunci, sim: &StampsSim) {
    k.env("STAMPS_BASE_URL", sim.base_url())
        .env("STAMPS_TOKEN", sim.auth_token())
        .env("STAMPS_MERCHANT_ID", sim.merchant_id().to_string());
}

/// Runs one client program against a fresh agent: the token, the header, one invalidation,
/// then the token again — one request to the provider for the first token and one for the
/// invalidation, nothing else.
async fn client_round_trip(program: &str, args: &[&str]) {
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    stamps_env(&mut k, &sim);
    let agent = Agent::start(&k, &[]);
    assert_eq!(sim.request_count(), 1, "the first token, at start");
    let mut cmd = Command::new(program);
    cmd.args(args)
        .arg("stamps")
        .env("KUNCI_AGENT", &agent.socket)
        .current_dir(clients_dir());
    let (code, stdout, stderr) = output(cmd).await;
    assert_eq!(code, 0, "{program}: {stderr}\n{}", agent.log());
    let answer: Value = serde_json::from_str(stdout.trim()).unwrap();
    let issued = sim.issued_tokens();
    assert_eq!(
        issued.len(),
        2,
        "one refresh for the invalidation: {answer}"
    );
    assert_eq!(answer["token"], issued[0].as_str());
    assert_eq!(answer["header"], format!("Bearer {}", issued[0]));
    assert_eq!(answer["invalidated"], true);
    assert_eq!(answer["after"], issued[1].as_str());
    assert_eq!(sim.request_count(), 2);
    let log = agent.stop();
    for token in &issued {
        assert!(!log.contains(token.as_str()), "a token in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_the_token_and_the_header_and_invalidates_once() {
    if available("curl", &["--version"]) {
        client_round_trip("sh", &["client.sh"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_standard_library_client_over_af_unix() {
    if available("python3", &["--version"]) {
        client_round_trip("python3", &["client.py"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_http_request_with_socket_path() {
    if available("node", &["--version"]) {
        client_round_trip("node", &["client.js"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_curl_extension_with_unix_socket_path() {
    if available(
        "php",
        &["-r", "exit(function_exists('curl_init') ? 0 : 1);"],
    ) {
        client_round_trip("php", &["client.php"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_or_repeated_invalidation_refreshes_once() {
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    stamps_env(&mut k, &sim);
    let agent = Agent::start(&k, &[]);
    let (status, body) = curl(&agent.socket, &["http://localhost/v1/token/stamps"]).await;
    assert_eq!(status, 200, "{body}");
    let token: Value = serde_json::from_str(&body).unwrap();
    let fingerprint = token["fingerprint"].as_str().unwrap().to_owned();
    // eight workers report the same rejected token, by value or by fingerprint
    let mut reports = Vec::new();
    for i in 0..8 {
        let socket = agent.socket.clone();
        let body = if i % 2 == 0 {
            token["token"].as_str().unwrap().to_owned()
        } else {
            format!("{{\"fingerprint\":\"{fingerprint}\"}}")
        };
        reports.push(tokio::spawn(async move {
            curl(
                &socket,
                &[
                    "--data-binary",
                    &body,
                    "http://localhost/v1/invalidate/stamps",
                ],
            )
            .await
        }));
    }
    let mut invalidated = 0;
    for report in reports {
        let (status, body) = report.await.unwrap();
        assert_eq!(status, 200, "{body}");
        if body.contains("true") {
            invalidated += 1;
        }
    }
    assert_eq!(invalidated, 1, "one report wins");
    let (_, after) = curl(
        &agent.socket,
        &[
            "-H",
            "Accept: text/plain",
            "http://localhost/v1/token/stamps",
        ],
    )
    .await;
    assert_eq!(sim.request_count(), 2, "one refresh for eight reports");
    assert_eq!(after, sim.issued_tokens()[1]);
    // an unknown profile, a bad body, a wrong method: typed errors, no token
    let (status, body) = curl(&agent.socket, &["http://localhost/v1/token/nope"]).await;
    assert_eq!(status, 404);
    assert!(body.contains("\"error\":\"configuration\""), "{body}");
    let (status, _) = curl(
        &agent.socket,
        &["--data-binary", "", "http://localhost/v1/invalidate/stamps"],
    )
    .await;
    assert_eq!(status, 400);
    let big = "x".repeat(40_000);
    let (status, _) = curl(
        &agent.socket,
        &[
            "--data-binary",
            &big,
            "http://localhost/v1/invalidate/stamps",
        ],
    )
    .await;
    assert_eq!(status, 413);
    let (status, _) = curl(
        &agent.socket,
        &["-X", "DELETE", "http://localhost/v1/token/stamps"],
    )
    .await;
    assert_eq!(status, 405);
    let (status, body) = curl(&agent.socket, &["http://localhost/v1/status"]).await;
    assert_eq!(status, 200);
    for token in sim.issued_tokens() {
        assert!(!body.contains(&token), "a token in the status: {body}");
    }
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["profiles"][0]["state"], "fresh", "{status}");
    assert_eq!(status["profiles"][0]["key"], "stamps:1");
    agent.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_become_statuses_with_the_cli_classes() {
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    stamps_env(&mut k, &sim);
    k.env("STAMPS_TOKEN", "not-the-token");
    let agent = Agent::start(&k, &[]);
    let (status, body) = curl(&agent.socket, &["http://localhost/v1/token/stamps"]).await;
    assert_eq!(status, 502, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"], "reauthenticate");
    assert_eq!(error["exit_code"], 3);
    assert!(!body.contains("not-the-token"), "{body}");
    // `kunci token` through the agent: the same exit code as working alone
    k.env("KUNCI_AGENT", agent.socket.to_str().unwrap());
    k.run(&["token", "stamps"])
        .await
        .expect_error(3, "from the agent")
        .expect_no_secret(&["not-the-token"]);
    agent.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kunci_token_uses_a_running_agent_and_works_alone_without_one() {
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    stamps_env(&mut k, &sim);
    let agent = Agent::start(&k, &["--store", "memory:"]);
    assert_eq!(sim.request_count(), 1);
    let mut client = Kunci::new();
    client
        .env("KUNCI_AGENT", agent.socket.to_str().unwrap())
        .env("STAMPS_TOKEN", "unused-because-the-agent-answers");
    let run = client.run(&["token", "stamps"]).await;
    run.expect(0);
    assert_eq!(run.line(), sim.issued_tokens()[0]);
    let run = client.run(&["header", "stamps"]).await;
    assert_eq!(
        run.expect(0).line(),
        format!("Authorization: Bearer {}", sim.issued_tokens()[0])
    );
    assert_eq!(sim.request_count(), 1, "served by the agent, no request");
    agent.stop();
    // nothing answers on the socket: the command works alone
    let mut alone = Kunci::new();
    stamps_env(&mut alone, &sim);
    alone.env("KUNCI_AGENT", k.path("run/agent.sock").to_str().unwrap());
    alone.run(&["token", "stamps"]).await.expect(0);
    assert_eq!(sim.request_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_serves_from_the_store_without_a_request() {
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    stamps_env(&mut k, &sim);
    let agent = Agent::start(&k, &[]);
    let (_, first) = curl(
        &agent.socket,
        &[
            "-H",
            "Accept: text/plain",
            "http://localhost/v1/token/stamps",
        ],
    )
    .await;
    agent.stop();
    assert_eq!(sim.request_count(), 1);
    let agent = Agent::start(&k, &[]);
    let (status, again) = curl(
        &agent.socket,
        &[
            "-H",
            "Accept: text/plain",
            "http://localhost/v1/token/stamps",
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(again, first);
    assert_eq!(sim.request_count(), 1, "served from the store");
    assert_eq!(mode(&agent.socket), 0o600);
    assert_eq!(mode(agent.socket.parent().unwrap()), 0o700);
    agent.stop();
}

/// The samples of the agent's /metrics, parsed by the Prometheus project's own parser.
async fn scrape(socket: &Path, format: &str) -> Vec<(String, Value, f64)> {
    let accept = if format == "openmetrics" {
        "Accept: application/openmetrics-text; version=1.0.0"
    } else {
        "Accept: text/plain"
    };
    let (status, text) = curl(socket, &["-H", accept, "http://localhost/metrics"]).await;
    assert_eq!(status, 200);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!(
        "python3 {} {format} < {}",
        clients_dir().join("parse_metrics.py").display(),
        file.display()
    ));
    let (code, stdout, stderr) = output(cmd).await;
    assert_eq!(code, 0, "the exposition does not parse: {stderr}\n{text}");
    let samples: Vec<(String, Value, f64)> = serde_json::from_str(stdout.trim()).unwrap();
    samples
}

fn sample(samples: &[(String, Value, f64)], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l[*k] == *v))
        .map(|s| s.2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_and_openmetrics_and_match_the_simulator() {
    let python = available(
        "python3",
        &["-c", "import prometheus_client.openmetrics.parser"],
    );
    if !python {
        return;
    }
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    stamps_env(&mut k, &sim);
    let port = crate::support::closed_port();
    let listen = format!("127.0.0.1:{port}");
    let agent = Agent::start(&k, &["--metrics-listen", &listen]);
    for _ in 0..5 {
        curl(&agent.socket, &["http://localhost/v1/token/stamps"]).await;
    }
    let (_, body) = curl(&agent.socket, &["http://localhost/v1/token/stamps"]).await;
    let token: Value = serde_json::from_str(&body).unwrap();
    curl(
        &agent.socket,
        &[
            "--data-binary",
            token["token"].as_str().unwrap(),
            "http://localhost/v1/invalidate/stamps",
        ],
    )
    .await;
    curl(&agent.socket, &["http://localhost/v1/token/stamps"]).await;
    curl(&agent.socket, &["http://localhost/v1/token/nope"]).await;

    for format in ["prometheus", "openmetrics"] {
        let samples = scrape(&agent.socket, format).await;
        let fetches = sample(
            &samples,
            "kunci_upstream_fetches_total",
            &[("provider", "stamps"), ("outcome", "ok")],
        );
        assert_eq!(
            fetches,
            Some(sim.request_count() as f64),
            "the fetch counter matches the simulator's request log"
        );
        assert_eq!(sim.request_count(), 2);
        assert_eq!(
            sample(
                &samples,
                "kunci_agent_requests_total",
                &[("route", "token"), ("code", "200")]
            ),
            Some(7.0)
        );
        assert_eq!(
            sample(
                &samples,
                "kunci_agent_requests_total",
                &[("route", "token"), ("code", "404")]
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &samples,
                "kunci_token_invalidations_total",
                &[("profile", "stamps")]
            ),
            Some(1.0)
        );
        let hits = sample(&samples, "kunci_cache_hits_total", &[("profile", "stamps")]).unwrap();
        assert!(hits >= 6.0, "{hits}");
        let expiry = sample(
            &samples,
            "kunci_token_expiry_seconds",
            &[("profile", "stamps")],
        )
        .unwrap();
        assert!(expiry > 3600.0 && expiry <= 86_400.0, "{expiry}");
        assert_eq!(
            sample(
                &samples,
                "kunci_refresh_duration_seconds_count",
                &[("provider", "stamps")]
            ),
            Some(2.0)
        );
    }
    // the loopback port serves the metrics and nothing else
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{listen}/metrics"));
    assert_eq!(output(cmd).await.1, "200");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}"])
        .arg(format!("http://{listen}/v1/token/stamps"));
    let (_, out, _) = output(cmd).await;
    assert!(out.ends_with("404"), "{out}");
    assert!(!out.contains(&sim.issued_tokens()[1]), "{out}");
    agent.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr, reason = "a skipped test says why")]
async fn another_user_is_refused_until_allowed_and_a_reload_allows_it() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: dropping privileges to another user needs root");
        return;
    }
    if !available("curl", &["--version"]) {
        return;
    }
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    stamps_env(&mut k, &sim);
    // the socket must be reachable for the other user: the home traversable, the socket 0666
    std::fs::set_permissions(k.home.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::create_dir(k.path("run")).unwrap();
    std::fs::set_permissions(k.path("run"), std::fs::Permissions::from_mode(0o711)).unwrap();
    let config = k.path("config.toml");
    std::fs::write(&config, "[agent]\nsocket_mode = \"0666\"\n").unwrap();
    let agent = Agent::start(&k, &["--config", config.to_str().unwrap()]);
    let nobody = 65_534;
    let as_nobody = |socket: &Path| {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--max-time", "10", "--unix-socket"])
            .arg(socket)
            .args(["-w", "\n%{http_code}", "http://localhost/v1/token/stamps"])
            .uid(nobody)
            .gid(nobody);
        cmd
    };
    let (code, out, err) = output(as_nobody(&agent.socket)).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("\n403"), "{out}");
    assert!(!out.contains(&sim.issued_tokens()[0]), "no token: {out}");
    let log = agent.log();
    let refusal = log
        .lines()
        .find(|l| l.contains("refused a connection"))
        .unwrap_or_else(|| panic!("no log line:\n{log}"));
    assert!(
        refusal.contains("uid=65534") && refusal.contains("pid="),
        "{refusal}"
    );

    // allow the user, reload with SIGHUP: the same agent serves it, with no new request
    std::fs::write(
        &config,
        format!("[agent]\nsocket_mode = \"0666\"\nallow_uids = [{nobody}]\n"),
    )
    .unwrap();
    agent.signal(rustix::process::Signal::HUP);
    let mut served = String::new();
    for _ in 0..100 {
        let (_, out, _) = output(as_nobody(&agent.socket)).await;
        if out.ends_with("\n200") {
            served = out;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served.contains(&sim.issued_tokens()[0]),
        "{served}\n{}",
        agent.log()
    );
    assert_eq!(sim.request_count(), 1, "the reload kept the cached token");
    agent.stop();
}

/// Waits (bounded) until `path` holds at least `lines` lines.
async fn lines_of(path: &Path, lines: usize) -> Vec<String> {
    for _ in 0..300 {
        if let Ok(text) = std::fs::read_to_string(path) {
            let got: Vec<String> = text.lines().map(str::to_owned).collect();
            if got.len() >= lines {
                return got;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never had {lines} lines", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_are_rewritten_at_every_refresh_with_mode_0600() {
    let sim = StampsSim::start_with(SimServer::builder().token_lifetime(Duration::from_secs(4)))
        .await
        .unwrap();
    let mut k = Kunci::new();
    stamps_env(&mut k, &sim);
    let sink = k.path("sinks/stamps.header");
    std::fs::create_dir(k.path("sinks")).unwrap();
    let config = k.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\n[[agent.sinks]]\nprofile = \"stamps\"\npath = \"{}\"\nformat = \"header\"\n",
            sink.display()
        ),
    )
    .unwrap();
    let agent = Agent::start(&k, &["--config", config.to_str().unwrap()]);
    let mut seen = Vec::new();
    for _ in 0..300 {
        if let Ok(text) = std::fs::read_to_string(&sink)
            && seen.last() != Some(&text)
        {
            seen.push(text);
            if seen.len() == 2 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.len(), 2, "the sink follows a refresh\n{}", agent.log());
    let issued = sim.issued_tokens();
    assert_eq!(seen[0], format!("Bearer {}\n", issued[0]));
    assert_eq!(seen[1], format!("Bearer {}\n", issued[1]));
    assert_eq!(mode(&sink), 0o600);
    agent.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_restarts_its_command_when_the_token_is_refreshed() {
    let sim = StampsSim::start_with(SimServer::builder().token_lifetime(Duration::from_secs(4)))
        .await
        .unwrap();
    let mut k = Kunci::new();
    stamps_env(&mut k, &sim);
    let seen = k.path("seen");
    let script = format!(
        "echo \"$STAMPS_TOKEN $AUTH\" >> {}; exec sleep 60",
        seen.display()
    );
    let mut cmd = k.command(&[
        "exec",
        "--env",
        "STAMPS_TOKEN=stamps",
        "--env",
        "AUTH=stamps:header",
        "--grace",
        "5",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let lines = lines_of(&seen, 2).await;
    let issued = sim.issued_tokens();
    assert_eq!(lines[0], format!("{0} Bearer {0}", issued[0]));
    assert_eq!(lines[1], format!("{0} Bearer {0}", issued[1]));
    // SIGTERM reaches the command; exec ends with its status (sleep killed by SIGTERM)
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status, Some(128 + 15), "{stderr}");
    for token in &issued {
        assert!(!stderr.contains(token.as_str()), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_passes_on_the_exit_status_and_refuses_bad_specs() {
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    stamps_env(&mut k, &sim);
    let run = k
        .run(&[
            "exec",
            "--env",
            "T=stamps",
            "--",
            "sh",
            "-c",
            "test -n \"$T\" && exit 7",
        ])
        .await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    k.run(&["exec", "--env", "1X=stamps", "--", "true"])
        .await
        .expect_error(2, "is not NAME=PROFILE");
    k.run(&[
        "exec", "--env", "T=stamps", "--signal", "NOPE", "--", "true",
    ])
    .await
    .expect_error(2, "is not a signal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kalsel_refresh_token_expiry_and_a_cooldown_are_in_status_and_metrics() {
    use auth_testkit::{kalsel::KalselSim, sehatmu::SehatMuSim};
    let python = available(
        "python3",
        &["-c", "import prometheus_client.openmetrics.parser"],
    );
    if !python {
        return;
    }
    let kalsel = KalselSim::start().await.unwrap();
    let sehatmu = SehatMuSim::start().await.unwrap();
    let refresh = kalsel.login();
    let exp = kunci::core::jwt::time_claims(&refresh)
        .unwrap()
        .exp
        .unwrap()
        .unix_timestamp();
    let mut k = Kunci::new();
    k.env("KALSEL_BASE_URL", kalsel.base_url())
        .env("KALSEL_REFRESH_TOKEN", &refresh)
        .env("SEHATMU_BASE_URL", sehatmu.base_url())
        .env("SEHATMU_CLIENT_ID", sehatmu.client_id())
        .env("SEHATMU_CLIENT_SECRET", "not-the-secret-77");
    let agent = Agent::start(&k, &[]);
    // the wrong secret: refused once, then a cool-down without a request
    let (status, body) = curl(&agent.socket, &["-i", "http://localhost/v1/token/sehatmu"]).await;
    assert_eq!(
        status, 429,
        "the start-up attempt failed; now the cool-down: {body}"
    );
    assert!(body.to_ascii_lowercase().contains("retry-after:"), "{body}");
    assert!(body.contains("\"error\":\"rate_limited\""), "{body}");
    assert!(body.contains("\"until\":\"20"), "{body}");
    assert!(!body.contains("not-the-secret-77"), "{body}");
    assert_eq!(
        sehatmu.request_count(),
        1,
        "nothing sent during the cool-down"
    );

    let samples = scrape(&agent.socket, "openmetrics").await;
    assert_eq!(
        sample(
            &samples,
            "kunci_refresh_credential_expiry_timestamp_seconds",
            &[("profile", "kalsel")]
        ),
        Some(exp as f64)
    );
    let until = sample(
        &samples,
        "kunci_cooldown_until_timestamp_seconds",
        &[("profile", "sehatmu")],
    )
    .expect("a cool-down gauge");
    let now = sehatmu.now().unix_timestamp() as f64;
    assert!(
        until > now && until <= now + 61.0,
        "SehatMu's 60 s cool-down: {until}"
    );
    assert_eq!(
        sample(
            &samples,
            "kunci_upstream_fetches_total",
            &[("provider", "sehatmu"), ("outcome", "reauthenticate")]
        ),
        Some(1.0)
    );
    let (_, status) = curl(&agent.socket, &["http://localhost/v1/status"]).await;
    let status: Value = serde_json::from_str(&status).unwrap();
    let profiles = status["profiles"].as_array().unwrap();
    let kalsel_row = profiles.iter().find(|p| p["profile"] == "kalsel").unwrap();
    assert!(
        kalsel_row["refresh_credential_expires_at"]
            .as_str()
            .unwrap()
            .starts_with("20"),
        "{kalsel_row}"
    );
    let sehatmu_row = profiles.iter().find(|p| p["profile"] == "sehatmu").unwrap();
    assert!(sehatmu_row["cooldown_until"].is_string(), "{sehatmu_row}");
    let log = agent.stop();
    assert!(
        !log.contains(&refresh) && !log.contains("not-the-secret-77"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_signal_signals_its_command_instead_of_restarting_it() {
    let sim = StampsSim::start_with(SimServer::builder().token_lifetime(Duration::from_secs(4)))
        .await
        .unwrap();
    let mut k = Kunci::new();
    stamps_env(&mut k, &sim);
    let seen = k.path("seen");
    let script = format!(
        "echo start >> {0}; trap 'echo signalled >> {0}' USR1; while :; do sleep 0.1; done",
        seen.display()
    );
    let mut cmd = k.command(&[
        "exec", "--env", "T=stamps", "--signal", "USR1", "--", "sh", "-c", &script,
    ]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let lines = lines_of(&seen, 2).await;
    assert_eq!(
        lines[..2],
        ["start", "signalled"],
        "not restarted: signalled"
    );
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert_eq!(
        wait_bounded(&mut child, Duration::from_secs(20)),
        Some(128 + 15)
    );
}
