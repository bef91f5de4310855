//! What makes `kunci` fit shells and scripts: `--json`, the default profile, completions and
//! man pages, and read-only commands that leave no trace.

use auth_testkit::{sehatmu::SehatMuSim, stamps::StampsSim};

use crate::support::{Kunci, run_command, tree};

fn stamps(sim: &StampsSim) -> Kunci {
    let mut k = Kunci::new();
    k.env("STAMPS_BASE_URL", sim.base_url())
        .env("STAMPS_TOKEN", sim.auth_token())
        .env("STAMPS_MERCHANT_ID", sim.merchant_id().to_string());
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_json_gives_the_token_its_scheme_expiry_and_state() {
    let sim = StampsSim::start().await.unwrap();
    let k = stamps(&sim);
    let run = k.run(&["token", "stamps", "--json"]).await;
    run.expect(0);
    let json: serde_json::Value = serde_json::from_str(run.line()).unwrap();
    assert_eq!(json["token"], sim.issued_tokens()[0].as_str());
    assert_eq!(json["scheme"], "Bearer");
    assert_eq!(json["state"], "fresh");
    assert_eq!(json["profile"], "stamps");
    assert_eq!(json["provider"], "stamps");
    let expires = json["expires_at"].as_str().unwrap();
    time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(expires.ends_with('Z'), "{expires}");

    // A static token never expires, and is sent as `Token`.
    let mut s = Kunci::new();
    s.env("STAMPS_STATIC_TOKEN", "perm-9f8e");
    let run = s.run(&["token", "stamps", "--json"]).await;
    let json: serde_json::Value = serde_json::from_str(run.expect(0).line()).unwrap();
    assert_eq!(json["scheme"], "Token");
    assert_eq!(json["expires_at"], serde_json::Value::Null);
    assert_eq!(json["token"], "perm-9f8e");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_has_state_and_expiry_and_never_a_secret() {
    let sim = StampsSim::start().await.unwrap();
    let sehatmu = SehatMuSim::start().await.unwrap();
    let mut k = stamps(&sim);
    k.env("SEHATMU_BASE_URL", sehatmu.base_url())
        .env("SEHATMU_CLIENT_ID", sehatmu.client_id())
        .env("SEHATMU_CLIENT_SECRET", sehatmu.client_secret())
        // configured wrongly: a row that says so
        .env("KRMPESAN_DEVICE_KEY", "dk-55aa");
    let token = k.run(&["token", "stamps"]).await;
    let token = token.expect(0).line().to_owned();
    k.run(&["token", "sehatmu"]).await.expect(0);
    let mut secrets = vec![
        token.as_str(),
        sim.auth_token(),
        sehatmu.client_secret(),
        "dk-55aa",
    ];
    let issued = sehatmu.issued_tokens();
    secrets.extend(issued.iter().map(String::as_str));

    let run = k.run(&["status", "--json"]).await;
    run.expect(0).expect_no_secret(&secrets);
    let json: serde_json::Value = serde_json::from_str(run.line()).unwrap();
    assert_eq!(
        json["store"],
        format!("file:{}", k.store().display()).as_str()
    );
    let rows = json["profiles"].as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["profile"] == name)
            .unwrap_or_else(|| panic!("{name}: {json}"))
    };
    let stamps = row("stamps");
    assert_eq!(stamps["state"], "fresh");
    assert_eq!(stamps["configured"], true);
    assert_eq!(
        stamps["key"],
        format!("stamps:{}", sim.merchant_id()).as_str()
    );
    assert!(stamps["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(row("sehatmu")["state"], "fresh");
    let krmpesan = row("krmpesan");
    assert_eq!(krmpesan["configured"], false);
    assert_eq!(krmpesan["state"], serde_json::Value::Null);

    // One profile by name, and nothing configured at all: still one JSON object.
    let one = k.run(&["status", "stamps", "--json"]).await;
    one.expect(0).expect_no_secret(&secrets);
    let json: serde_json::Value = serde_json::from_str(one.line()).unwrap();
    assert_eq!(json["profiles"].as_array().unwrap().len(), 1);
    let empty = Kunci::new().run(&["status", "--json"]).await;
    let json: serde_json::Value = serde_json::from_str(empty.expect(0).line()).unwrap();
    assert_eq!(json["profiles"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_named_profile_wins_over_kunci_profile_which_wins_over_default_profile() {
    let mut k = Kunci::new();
    std::fs::write(
        k.path("config.toml"),
        r#"
default_profile = "from-file"

[profiles.from-file]
provider = "stamps"
static_token = "env:FILE_TOKEN"

[profiles.from-env]
provider = "stamps"
static_token = "env:ENV_TOKEN"

[profiles.named]
provider = "stamps"
static_token = "env:NAMED_TOKEN"
"#,
    )
    .unwrap();
    let config = k.path("config.toml");
    k.env("KUNCI_CONFIG", config.to_str().unwrap())
        .env("FILE_TOKEN", "file-1")
        .env("ENV_TOKEN", "env-2")
        .env("NAMED_TOKEN", "named-3");
    assert_eq!(k.run(&["token"]).await.expect(0).line(), "file-1");
    assert_eq!(
        k.run(&["header"]).await.expect(0).line(),
        "Authorization: Token file-1"
    );
    k.env("KUNCI_PROFILE", "from-env");
    assert_eq!(k.run(&["token"]).await.expect(0).line(), "env-2");
    assert_eq!(k.run(&["token", "named"]).await.expect(0).line(), "named-3");
    // an unknown default is an error naming it, as an unknown PROFILE is
    k.env("KUNCI_PROFILE", "nope");
    k.run(&["token"])
        .await
        .expect_error(2, "unknown profile `nope`");

    // no profile anywhere: a usage error saying where one comes from
    let bare = Kunci::new();
    let run = bare.run(&["token"]).await;
    run.expect_error(2, "no PROFILE");
    assert!(run.stderr.contains("KUNCI_PROFILE"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_for_bash_zsh_and_fish_name_every_subcommand() {
    let k = Kunci::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = k.run(&["completions", shell]).await;
        run.expect(0);
        for subcommand in [
            "token",
            "header",
            "status",
            "login",
            "logout",
            "verify",
            "agent",
            "exec",
            "completions",
        ] {
            assert!(
                run.stdout.contains(subcommand),
                "{shell}: {subcommand} missing:\n{}",
                run.stdout
            );
        }
    }
    k.run(&["completions", "tcsh"]).await.expect(2);
    // the man-page writer `cargo xtask man` runs is not offered in the help
    let help = k.run(&["--help"]).await;
    assert!(!help.stdout.contains("generate-man"), "{}", help.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn man_pages_are_written_for_the_command_and_each_subcommand() {
    let k = Kunci::new();
    let dir = k.path("man");
    k.run(&["generate-man", dir.to_str().unwrap()])
        .await
        .expect(0);
    let page = std::fs::read_to_string(dir.join("kunci.1")).unwrap();
    assert!(page.contains(".TH kunci"), "{page}");
    assert!(page.contains("KUNCI_STORE_KEY"), "{page}");
    let token = std::fs::read_to_string(dir.join("kunci-token.1")).unwrap();
    assert!(token.contains("\\-\\-json"), "{token}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_create_no_directory() {
    // The store is the platform default (under XDG_DATA_HOME), or a directory named with
    // --store; neither exists, and neither may be created by a command that only reads.
    let mut k = Kunci::new();
    k.env("STAMPS_MERCHANT_ID", "1234")
        .env("KALSEL_REFRESH_TOKEN", "rt-1")
        .env("KALSEL_ACCOUNT", "ops");
    let named = k.path("named-store");
    let named = named.to_str().unwrap();
    let runs: [&[&str]; 9] = [
        &["status"],
        &["status", "--json"],
        &["status", "kalsel", "--json"],
        &["status", "--store", named],
        &["logout", "stamps"],
        &["logout", "kalsel", "--store", named],
        &["completions", "bash"],
        &["--help"],
        &["--version"],
    ];
    for args in runs {
        let mut cmd = k.command(args);
        cmd.env_remove("KUNCI_STORE");
        let run = run_command(cmd).await;
        run.expect(0);
        assert_eq!(
            tree(k.home.path()),
            Vec::<std::path::PathBuf>::new(),
            "`kunci {}` created something",
            args.join(" ")
        );
    }
    // a command that stores creates the default store
    let mut s = Kunci::new();
    s.env("STAMPS_STATIC_TOKEN", "perm-1");
    let mut cmd = s.command(&["token", "stamps"]);
    cmd.env_remove("KUNCI_STORE");
    run_command(cmd).await.expect(0);
    assert!(s.path("data/kunci").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_needs_no_secret_only_what_names_the_account() {
    let sim = StampsSim::start().await.unwrap();
    let k = stamps(&sim);
    k.run(&["token", "stamps"]).await.expect(0);
    let key = format!("stamps+{}.json", sim.merchant_id());
    assert!(k.store().join(&key).exists());
    // a new shell: the merchant ID is known, the token (a secret) is not
    let mut later = Kunci::reusing(k.home);
    later.env("STAMPS_MERCHANT_ID", sim.merchant_id().to_string());
    let run = later.run(&["logout", "stamps"]).await;
    run.expect(0);
    assert!(
        run.stderr.contains("removed the token entry"),
        "{}",
        run.stderr
    );
    assert!(!later.store().join(&key).exists());

    // SehatMu: the client ID names the account; Kalsel.dev: the account, `default` unless set
    let sehatmu = SehatMuSim::start().await.unwrap();
    let mut k = Kunci::new();
    k.env("SEHATMU_BASE_URL", sehatmu.base_url())
        .env("SEHATMU_CLIENT_ID", sehatmu.client_id())
        .env("SEHATMU_CLIENT_SECRET", sehatmu.client_secret());
    k.run(&["token", "sehatmu"]).await.expect(0);
    let mut later = Kunci::reusing(k.home);
    later.env("SEHATMU_CLIENT_ID", sehatmu.client_id());
    let run = later.run(&["logout", "sehatmu"]).await;
    assert!(
        run.expect(0)
            .stderr
            .contains(&format!("sehatmu:{}", sehatmu.client_id())),
        "{}",
        run.stderr
    );
    let empty = Kunci::new();
    empty.run(&["logout", "kalsel"]).await.expect(0);
    // without the client ID nothing names the account
    let run = empty.run(&["logout", "sehatmu"]).await;
    run.expect_error(2, "SEHATMU_CLIENT_ID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_every_account_a_token_pool_stored_under_a_pool_backed_profile() {
    use kunci::{
        AccountSpec, HttpClient, HttpConfig, StoreKey, TokenPool,
        providers::stamps::{StampsConfig, StampsSource},
    };
    // A service's pool: three merchants (each its own simulator), stored in the CLI's store.
    let sims = [
        StampsSim::start().await.unwrap(),
        StampsSim::start().await.unwrap(),
        StampsSim::start().await.unwrap(),
    ];
    let mut k = Kunci::new();
    let pool = TokenPool::<usize>::builder()
        .store(kunci::FileStore::new(k.store()).unwrap())
        .build()
        .unwrap();
    let client = HttpClient::from(HttpConfig::default());
    let mut secrets: Vec<String> = Vec::new();
    for (i, sim) in sims.iter().enumerate() {
        let config = StampsConfig::jwt(sim.auth_token().to_owned().into(), sim.merchant_id())
            .with_base_url(&sim.base_url())
            .unwrap();
        let key = StoreKey::new(format!("stamps:pos-{i}")).unwrap();
        pool.register(
            i,
            AccountSpec::new(StampsSource::new(config, client.clone()).unwrap(), key),
        );
        let token = pool.token(&i).await.unwrap();
        secrets.push(secrecy::ExposeSecret::expose_secret(token.secret()).to_owned());
        secrets.push(sim.auth_token().to_owned());
    }
    drop(pool);
    // A single profile's account of the same provider, outside the pool's prefix.
    k.env("STAMPS_BASE_URL", sims[0].base_url())
        .env("STAMPS_TOKEN", sims[0].auth_token())
        .env("STAMPS_MERCHANT_ID", sims[0].merchant_id().to_string());
    k.run(&["token", "stamps"]).await.expect(0);
    std::fs::write(
        k.path("config.toml"),
        "[profiles.pos]\nprovider = \"stamps\"\naccounts = \"stamps:pos-\"\n",
    )
    .unwrap();
    let config = k.path("config.toml");
    k.env("KUNCI_CONFIG", config.to_str().unwrap());
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();

    let run = k.run(&["status", "pos", "--json"]).await;
    run.expect(0).expect_no_secret(&secrets);
    let json: serde_json::Value = serde_json::from_str(run.line()).unwrap();
    let rows = json["profiles"].as_array().unwrap();
    let keys: Vec<&str> = rows.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        ["stamps:pos-0", "stamps:pos-1", "stamps:pos-2"],
        "{json}"
    );
    for row in rows {
        assert_eq!(row["profile"], "pos");
        assert_eq!(row["state"], "fresh", "{json}");
    }
    // The table lists them too, and the whole listing adds the single profile beside them.
    let table = k.run(&["status"]).await;
    table.expect(0).expect_no_secret(&secrets);
    for key in ["stamps:pos-0", "stamps:pos-1", "stamps:pos-2", "stamps:1"] {
        assert!(
            table.stdout.contains(key),
            "{key} missing: {}",
            table.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_prefix_that_is_not_a_store_key_prefix_exits_2() {
    let mut k = Kunci::new();
    std::fs::write(
        k.path("config.toml"),
        "[profiles.pos]\nprovider = \"stamps\"\naccounts = \"stamps/*\"\n",
    )
    .unwrap();
    let config = k.path("config.toml");
    k.env("KUNCI_CONFIG", config.to_str().unwrap());
    k.run(&["status", "pos"])
        .await
        .expect_error(2, "is not a store-key prefix");
}
