//! Every command: token, header, status, login, logout, verify, demo, and the global options.

use auth_testkit::{
    kalsel::KalselSim,
    sehatmu::SehatMuSim,
    stamps::{SimpleJwt, StampsSim},
};

use crate::support::Kunci;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_uses_the_token_scheme() {
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    k.env("STAMPS_BASE_URL", sim.base_url())
        .env("STAMPS_TOKEN", sim.auth_token())
        .env("STAMPS_MERCHANT_ID", sim.merchant_id().to_string());
    let run = k.run(&["header", "stamps"]).await;
    run.expect(0);
    let issued = sim.issued_tokens();
    assert_eq!(run.line(), format!("Authorization: Bearer {}", issued[0]));

    // a static token: `Token`, and no request at all
    let mut k = Kunci::new();
    k.env("STAMPS_BASE_URL", sim.base_url())
        .env("STAMPS_STATIC_TOKEN", sim.static_token());
    let before = sim.request_count();
    let run = k.run(&["header", "stamps"]).await;
    run.expect(0);
    assert_eq!(
        run.line(),
        format!("Authorization: Token {}", sim.static_token())
    );
    assert_eq!(sim.request_count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_static_token_is_printed_at_once_not_the_stored_one() {
    // after a leak the operator replaces STAMPS_STATIC_TOKEN; the store still holds the old one
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    k.env("STAMPS_BASE_URL", sim.base_url())
        .env("STAMPS_STATIC_TOKEN", "leaked-1");
    k.run(&["header", "stamps"]).await.expect(0);
    k.env("STAMPS_STATIC_TOKEN", "replaced-2");
    let run = k.run(&["header", "stamps"]).await;
    run.expect(0);
    assert_eq!(run.line(), "Authorization: Token replaced-2");
    // and the store now holds the new one: a third run prints it again
    let run = k.run(&["header", "stamps"]).await;
    assert_eq!(run.line(), "Authorization: Token replaced-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_options_before_or_after_the_subcommand() {
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    k.env("STAMPS_BASE_URL", sim.base_url())
        .env("STAMPS_STATIC_TOKEN", sim.static_token());
    let elsewhere = k.path("elsewhere");
    let elsewhere = elsewhere.to_str().unwrap();
    k.run(&["--store", elsewhere, "--timeout", "5", "token", "stamps"])
        .await
        .expect(0);
    assert!(k.path("elsewhere").join("stamps+static.json").exists());
    let other = k.path("other");
    let other = other.to_str().unwrap();
    k.run(&["token", "stamps", "--store", other, "-v", "--timeout=2.5"])
        .await
        .expect(0);
    assert!(k.path("other").join("stamps+static.json").exists());
    // KUNCI_STORE (the sandbox store) when no --store is given
    k.run(&["token", "stamps"]).await.expect(0);
    assert!(k.store().join("stamps+static.json").exists());
    // memory: nothing written
    let mut m = Kunci::new();
    m.env("STAMPS_STATIC_TOKEN", sim.static_token())
        .env("KUNCI_TIMEOUT", "3");
    m.run(&["token", "stamps", "--store", "memory:"])
        .await
        .expect(0);
    assert!(!m.store().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_then_token_without_variables_then_logout() {
    let sim = SehatMuSim::start().await.unwrap();
    let mut k = Kunci::new();
    k.env("SEHATMU_BASE_URL", sim.base_url());
    let input = format!("{}\n{}\n", sim.client_id(), sim.client_secret());
    let login = k.run_with_stdin(&["login", "sehatmu"], &input).await;
    login.expect(0).expect_no_secret(&[sim.client_secret()]);
    assert!(
        login.stderr.contains("SEHATMU_CLIENT_SECRET"),
        "{}",
        login.stderr
    );

    let token = k.run(&["token", "sehatmu"]).await;
    token.expect(0);
    assert_eq!(sim.request_count(), 1);
    let status = k.run(&["status"]).await;
    status
        .expect(0)
        .expect_no_secret(&[sim.client_secret(), token.line()]);
    assert!(status.stdout.starts_with("PROFILE"), "{}", status.stdout);
    assert!(status.stdout.contains("fresh"), "{}", status.stdout);
    assert!(
        status
            .stdout
            .contains(&format!("sehatmu:{}", sim.client_id())),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("in 59m") || status.stdout.contains("in 1h"),
        "{}",
        status.stdout
    );

    let logout = k.run(&["logout", "sehatmu"]).await;
    logout.expect(0);
    assert!(
        logout.stderr.contains("removed the token entry"),
        "{}",
        logout.stderr
    );
    assert!(
        logout.stderr.contains("the saved login"),
        "{}",
        logout.stderr
    );
    k.run(&["token", "sehatmu"])
        .await
        .expect_error(2, "SEHATMU_CLIENT_ID");
    assert_eq!(sim.request_count(), 1);
    // nothing left to remove, and no way to tell the account: a configuration error
    k.run(&["logout", "sehatmu"]).await.expect(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_by_name_and_a_new_login_replaces_the_stored_token() {
    let sim = KalselSim::start().await.unwrap();
    let mut k = Kunci::new();
    k.env("KALSEL_BASE_URL", sim.base_url());
    let login = format!("KALSEL_REFRESH_TOKEN={}\n", sim.initial_refresh_token());
    k.run_with_stdin(&["login", "kalsel"], &login)
        .await
        .expect(0);
    k.run(&["token", "kalsel"]).await.expect(0);
    assert_eq!(sim.request_count(), 1);

    // A new login drops the stored token of the old one, so the next command uses what was
    // just typed: here a refresh token that expired (422 "Token is expired", exit 3).
    let expired = sim.expired_refresh_token();
    let new_login = format!("KALSEL_REFRESH_TOKEN={expired}\n");
    k.run_with_stdin(&["login", "kalsel"], &new_login)
        .await
        .expect(0);
    let run = k.run(&["token", "kalsel"]).await;
    run.expect_error(3, "jwt_error: Token is expired");
    assert_eq!(sim.request_count(), 2);
    assert!(run.stderr.contains("kunci login kalsel"), "{}", run.stderr);
    run.expect_no_secret(&[sim.initial_refresh_token(), &expired]);
}

/// `kunci login kalsel --email`: the password from stdin, sent once; only the refresh token
/// is saved (and the login's access token, so the next command sends nothing). The password
/// is in no output, log line or store file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_email_and_password_keeps_only_the_refresh_token() {
    use auth_testkit::kalsel::{EMAIL, PASSWORD};
    let sim = KalselSim::start().await.unwrap();
    let mut k = Kunci::new();
    k.env("KALSEL_BASE_URL", sim.base_url())
        .env("KALSEL_TOKEN_LIFETIME_MINUTES", "60");
    let password = format!("{PASSWORD}\n");
    let login = k
        .run_with_stdin(&["-vvv", "login", "kalsel", "--email", EMAIL], &password)
        .await;
    login.expect(0);
    assert!(
        login
            .stderr
            .contains("logged in to Kalsel.dev as whois.muchlis@gmail.com")
            && login.stderr.contains("log in again before"),
        "{}",
        login.stderr
    );
    assert_eq!(sim.request_count(), 1);
    let request = sim.last_request().unwrap();
    assert_eq!(request.path, "/api/v1/login");
    assert_eq!(request.json().unwrap()["limit"], 60);
    let refresh_token = sim.refresh_token();

    let token = k.run(&["-vvv", "token", "kalsel"]).await;
    token.expect(0);
    assert_eq!(
        sim.request_count(),
        1,
        "the login's access token was stored"
    );
    let status = k.run(&["status", "kalsel"]).await;
    status.expect(0);
    assert!(
        status.stdout.contains("kalsel: log in again before")
            && status.stdout.contains("(in 6d 23h)"),
        "{}",
        status.stdout
    );
    for run in [&login, &token, &status] {
        run.expect_no_secret(&[PASSWORD, &refresh_token]);
    }
    let mut files = 0;
    for entry in std::fs::read_dir(k.store()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(PASSWORD), "the password is in a store file");
        files += 1;
    }
    assert!(files >= 2, "the saved login and the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_saves_nothing_and_shows_no_password() {
    use auth_testkit::kalsel::EMAIL;
    let sim = KalselSim::start().await.unwrap();
    let mut k = Kunci::new();
    k.env("KALSEL_BASE_URL", sim.base_url());
    let wrong = "Wr0ng-Passw0rd";
    let run = k
        .run_with_stdin(
            &["-vvv", "login", "kalsel", "--email", EMAIL],
            &format!("{wrong}\n"),
        )
        .await;
    run.expect_error(3, "unauthorized: Username atau password tidak valid")
        .expect_no_secret(&[wrong]);
    assert!(run.stderr.contains("nothing was saved"), "{}", run.stderr);
    k.run(&["token", "kalsel"])
        .await
        .expect_error(2, "KALSEL_REFRESH_TOKEN");
    // a lifetime out of range: refused before the password is read or anything is sent
    k.env("KALSEL_TOKEN_LIFETIME_MINUTES", "10081");
    k.run_with_stdin(&["login", "kalsel", "--email", EMAIL], "whatever\n")
        .await
        .expect_error(2, "KALSEL_TOKEN_LIFETIME_MINUTES");
    // --email is Kalsel.dev's
    k.run_with_stdin(&["login", "sehatmu", "--email", EMAIL], "x\n")
        .await
        .expect_error(2, "--email is for Kalsel.dev");
    assert_eq!(sim.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_profiles_and_states_without_secrets() {
    let mut k = Kunci::new();
    // nothing configured
    let empty = k.run(&["status"]).await;
    empty.expect(0);
    assert!(
        empty.stderr.contains("no profile is configured"),
        "{}",
        empty.stderr
    );

    k.env("STAMPS_STATIC_TOKEN", "perm-7a1b")
        .env("KALSEL_REFRESH_TOKEN", "rt-3c4d");
    let none = k.run(&["status"]).await;
    none.expect(0).expect_no_secret(&["perm-7a1b", "rt-3c4d"]);
    assert!(none.stdout.contains("none"), "{}", none.stdout);
    k.run(&["token", "stamps"]).await.expect(0);
    let run = k.run(&["status", "stamps"]).await;
    run.expect(0).expect_no_secret(&["perm-7a1b"]);
    let row = run.stdout.lines().nth(1).unwrap();
    assert!(row.starts_with("stamps"), "{row}");
    assert!(row.contains("fresh") && row.contains("never"), "{row}");
    assert!(
        row.contains(&format!("file:{}", k.store().display())),
        "{row}"
    );
    // a profile asked for by name that is not configured is an error
    k.run(&["status", "krmpesan"])
        .await
        .expect_error(2, "KRMPESAN_REFRESH_TOKEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_prints_the_claims() {
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    k.env("STAMPS_BASE_URL", sim.base_url())
        .env("STAMPS_TOKEN", sim.auth_token())
        .env("STAMPS_MERCHANT_ID", sim.merchant_id().to_string());
    let run = k.run(&["verify", "stamps"]).await;
    run.expect(0).expect_no_secret(&[sim.auth_token()]);
    let claims: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(claims["merchant_id"], sim.merchant_id());
    // As Stamps wrote it: a string from simplejwt 5.5.1 on, not turned into a number.
    assert_eq!(claims["user_id"], "5870");
    assert_eq!(claims["user_id"], sim.user_id_claim());
    assert_eq!(claims["token_type"], "access");
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    // In simplejwt's order.
    let order: Vec<usize> = ["token_type", "exp", "iat", "jti", "user_id", "merchant_id"]
        .iter()
        .map(|k| run.stdout.find(&format!("\"{k}\"")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", run.stdout);
    assert_eq!(
        sim.request_count(),
        2,
        "get-access-token, then verify-token"
    );

    // not Stamps, or a static token: nothing to verify
    k.run(&["verify", "sehatmu"])
        .await
        .expect_error(2, "Stamps");
    let mut s = Kunci::new();
    s.env("STAMPS_STATIC_TOKEN", "perm-1");
    s.run(&["verify", "stamps"])
        .await
        .expect_error(2, "static token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_prints_a_numeric_user_id_as_a_number() {
    let sim = StampsSim::start().await.unwrap();
    sim.set_simplejwt(SimpleJwt::V5_5_0);
    let mut k = Kunci::new();
    k.env("STAMPS_BASE_URL", sim.base_url())
        .env("STAMPS_TOKEN", sim.auth_token())
        .env("STAMPS_MERCHANT_ID", sim.merchant_id().to_string());
    let run = k.run(&["verify", "stamps"]).await;
    run.expect(0);
    let claims: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(claims["user_id"], 5870);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_the_claim_that_does_not_fit() {
    let sim = StampsSim::start().await.unwrap();
    // Django finds the user by `5870.0`, so the server verifies the token and answers it.
    sim.set_user_id_claim(Some(serde_json::json!(5870.0)));
    let mut k = Kunci::new();
    k.env("STAMPS_BASE_URL", sim.base_url())
        .env("STAMPS_TOKEN", sim.auth_token())
        .env("STAMPS_MERCHANT_ID", sim.merchant_id().to_string());
    k.run(&["verify", "stamps"]).await.expect_error(
        6,
        "the claim `user_id` is a number that is not a 64-bit integer",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_tells_a_refused_token_from_a_refused_account() {
    let sim = StampsSim::start().await.unwrap();
    let mut k = Kunci::new();
    k.env("STAMPS_BASE_URL", sim.base_url())
        .env("STAMPS_TOKEN", sim.auth_token())
        .env("STAMPS_MERCHANT_ID", sim.merchant_id().to_string());
    k.run(&["token", "stamps"]).await.expect(0);

    // The signing key changed: the stored token is refused as a token.
    sim.set_signing_key(b"rotated-django-secret-key");
    let run = k.run(&["verify", "stamps"]).await;
    run.expect_error(3, "stamps refused the stored token")
        .expect_no_secret(&[sim.auth_token()]);
    assert!(run.stderr.contains("token_not_valid"), "{}", run.stderr);
    assert!(run.stderr.contains("kunci logout stamps"), "{}", run.stderr);

    // The user was deactivated: a new token would not help.
    k.run(&["logout", "stamps"]).await.expect(0);
    k.run(&["token", "stamps"]).await.expect(0);
    sim.set_user_active(false);
    let run = k.run(&["verify", "stamps"]).await;
    run.expect_error(3, "stamps refused the credential behind the stored token");
    assert!(run.stderr.contains("user_inactive"), "{}", run.stderr);
}

#[cfg(feature = "demo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_exits_zero() {
    let k = Kunci::new();
    let run = k.run(&["demo"]).await;
    run.expect(0);
    // Every provider of the workspace is in the demo's table, added or not by hand.
    for provider in kunci::ProviderKind::ALL
        .iter()
        .map(|k| k.display_name().split('.').next().unwrap_or_default())
    {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(provider) && l.ends_with("ok")),
            "{provider}:\n{}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains("UNEXPECTED"));
    assert!(
        run.stderr.is_empty(),
        "no spinner off a terminal: {}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_and_version() {
    let k = Kunci::new();
    let help = k.run(&["--help"]).await;
    help.expect(0);
    for word in [
        "token",
        "header",
        "status",
        "login",
        "logout",
        "verify",
        "demo",
        "completions",
        "Exit codes",
        "KUNCI_STORE_KEY",
        "KUNCI_PROFILE",
    ] {
        assert!(help.stdout.contains(word), "{word}: {}", help.stdout);
    }
    // an unset variable's value is not shown as empty (`[env: KUNCI_TIMEOUT=]`)
    assert!(!help.stdout.contains("=]"), "{}", help.stdout);
    k.run(&["--version"]).await.expect(0);
}
