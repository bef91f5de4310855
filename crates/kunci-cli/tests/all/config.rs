//! Config file profiles: settings from values, `env:`, `file:` and `login`.

use auth_testkit::sehatmu::SehatMuSim;

use crate::support::Kunci;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_take_secrets_from_env_file_and_login() {
    let sim = SehatMuSim::start().await.unwrap();
    let mut k = Kunci::new();
    let secret_file = k.path("secret");
    std::fs::write(&secret_file, format!("{}\n", sim.client_secret())).unwrap();
    let config = format!(
        r#"
[profiles.klinik]
provider = "sehatmu"
base_url = "{base}"
client_id = "{id}"
client_secret = "env:KLINIK_SECRET"

[profiles.apotek]
provider = "sehatmu"
base_url = "{base}"
client_id = "{id}"
client_secret = "file:{file}"

[profiles.rumah-sakit]
provider = "sehatmu"
base_url = "{base}"
client_secret = "login"
"#,
        base = sim.base_url(),
        id = sim.client_id(),
        file = secret_file.display()
    );
    let config_path = k.path("kunci.toml");
    std::fs::write(&config_path, config).unwrap();
    k.env("KUNCI_CONFIG", config_path.to_str().unwrap())
        .env("KLINIK_SECRET", sim.client_secret());

    let klinik = k.run(&["token", "klinik"]).await;
    klinik.expect(0);
    // the same account: the stored token is shared, no second request
    let apotek = k.run(&["token", "apotek"]).await;
    apotek.expect(0);
    assert_eq!(klinik.line(), apotek.line());
    assert_eq!(sim.request_count(), 1);

    // `login`: nothing saved yet
    k.run(&["token", "rumah-sakit"])
        .await
        .expect_error(2, "saved login");
    let input = format!("{}\n{}\n", sim.client_id(), sim.client_secret());
    k.run_with_stdin(&["login", "rumah-sakit"], &input)
        .await
        .expect(0);
    let rs = k.run(&["token", "rumah-sakit"]).await;
    rs.expect(0);

    let status = k.run(&["status"]).await;
    status
        .expect(0)
        .expect_no_secret(&[sim.client_secret(), klinik.line()]);
    for profile in ["klinik", "apotek", "rumah-sakit"] {
        assert!(
            status.stdout.lines().any(|l| l.starts_with(profile)),
            "{profile}: {}",
            status.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_exit_2_without_quoting_secrets() {
    let mut k = Kunci::new();
    let path = k.path("kunci.toml");
    std::fs::write(
        &path,
        "[profiles.p]\nprovider = \"sehatmu\"\nclient_id = \"x\"\nclient_secret = \"hunter2-literal\"\n",
    )
    .unwrap();
    k.env("KUNCI_CONFIG", path.to_str().unwrap());
    k.run(&["token", "p"])
        .await
        .expect_error(2, "is a secret")
        .expect_no_secret(&["hunter2-literal"]);
    std::fs::write(
        &path,
        "[profiles.p]\nprovider = \"sehatmu\"\nclient_secret = hunter2\n",
    )
    .unwrap();
    k.run(&["status"])
        .await
        .expect_error(2, "line 3")
        .expect_no_secret(&["hunter2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_config_file_is_read_from_the_config_dir() {
    let k = Kunci::new();
    let dir = k.home.path().join("config").join("kunci");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        "[profiles.perm]\nprovider = \"stamps\"\nstatic_token = \"env:PERM\"\n",
    )
    .unwrap();
    let mut k = k;
    k.env("PERM", "perm-42");
    let run = k.run(&["header", "perm"]).await;
    run.expect(0);
    assert_eq!(run.line(), "Authorization: Token perm-42");
}
