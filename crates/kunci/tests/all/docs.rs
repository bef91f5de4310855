//! The variable tables of `docs/providers.md` are rendered from the providers' declarations
//! (`auth_core::provider::Declaration`): the page cannot drift from the code. `cargo codegen`
//! rewrites them by running this test with `KUNCI_BLESS=1`.

use std::{fmt::Write as _, path::PathBuf};

use kunci::ProviderKind;

const START: &str = "<!-- generated:variables:start -->";
const END: &str = "<!-- generated:variables:end -->";

fn render() -> String {
    let mut s = String::from(
        "<!-- Generated from each provider's `DECLARATION` by the facade's `docs` test (run by `cargo codegen`), do not edit by hand. -->\n",
    );
    for kind in ProviderKind::all() {
        let d = kind.declaration();
        let _ = write!(
            s,
            "\n### {} (`{}`)\n\n[Page](providers/{}.md) · [the provider's documentation]({}) · scheme: {}\n\n| variable | required | secret | asked by `kunci login` | what it is |\n|---|---|---|---|---|\n",
            d.display_name,
            d.name,
            d.name,
            d.docs_url,
            d.schemes.join(", ")
        );
        for v in d.variables {
            let yes = |b: bool| if b { "yes" } else { "no" };
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} | {} |",
                v.name,
                yes(v.required),
                yes(v.secret),
                yes(v.credential),
                v.help.replace('|', "\\|")
            );
        }
    }
    s
}

#[test]
fn the_variable_tables_of_the_providers_page_are_the_declarations() {
    if ProviderKind::all().len() != ProviderKind::WORKSPACE.len() {
        // A build without every provider renders a partial table: nothing to compare.
        return;
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/providers.md");
    let page = std::fs::read_to_string(&path).unwrap();
    let (Some(a), Some(b)) = (page.find(START), page.find(END)) else {
        panic!("docs/providers.md lacks the markers {START} … {END}");
    };
    let body_start = a + START.len() + 1;
    let expected = render();
    if page[body_start..b] == expected {
        return;
    }
    if std::env::var_os("KUNCI_BLESS").is_some() {
        let updated = format!("{}{expected}{}", &page[..body_start], &page[b..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!("the variable tables in docs/providers.md are stale: run `cargo codegen`");
}
