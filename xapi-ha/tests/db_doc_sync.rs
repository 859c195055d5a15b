//! `docs/pool-database.md` lists every class and field of the schema; its
//! tables (between the `schema:begin` and `schema:end` markers) must be
//! exactly what the schema table says, so the document cannot drift.
//!
//! `REGENERATE_DOC_TABLES=1 cargo test -p xapi_ha --test db_doc_sync`
//! rewrites the tables from the schema.

use std::path::PathBuf;

use xapi_ha::db::Class;
use xapi_ha::db::schema::{Access, Check, FieldDef, Ty};
use xapi_ha::value::Value;

const BEGIN: &str =
    "<!-- schema:begin (generated from xapi-ha/src/db/schema; see tests/db_doc_sync.rs) -->\n";
const END: &str = "<!-- schema:end -->\n";

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/pool-database.md")
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "`\"\"`".into(),
        Value::String(s) | Value::Enum(s) => format!("`{s}`"),
        Value::Int(i) => format!("`{i}`"),
        Value::Float(f) => format!("`{f}`"),
        Value::Bool(b) => format!("`{b}`"),
        Value::DateTime(d) => format!("`{d}`"),
        Value::Ref(r) => format!("`{r}`"),
        Value::Set(items) if items.is_empty() => "`[]`".into(),
        Value::Map(pairs) if pairs.is_empty() => "`{}`".into(),
        other => format!("`{other:?}`"),
    }
}

fn access(f: &FieldDef) -> String {
    match f.access {
        Access::Ro => "RO".into(),
        Access::Create => "RO, constructor".into(),
        Access::Rw => "RW".into(),
        Access::Derived(c, field) => format!("RO, derived from {}.{field}", c.name()),
    }
}

fn default(f: &FieldDef) -> String {
    match (f.name, f.access) {
        ("uuid", _) => "new uuid".into(),
        (_, Access::Derived(..)) => "-".into(),
        _ => show(&f.default_value()),
    }
}

fn check(f: &FieldDef) -> String {
    match f.check {
        Check::None => match f.ty {
            Ty::Enum(names) => format!("one of {}", names.join(", ")),
            _ => String::new(),
        },
        Check::NonNegative => ">= 0".into(),
        Check::OneOf(names) => format!(
            "one of {}",
            names
                .iter()
                .map(|n| show(&Value::String((*n).into())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn ty(f: &FieldDef) -> String {
    match f.ty {
        Ty::Enum(_) => "enum".into(),
        t => t.describe(),
    }
}

fn tables() -> String {
    let mut out = String::new();
    for c in Class::ALL {
        out.push_str(&format!("\n### {}\n\n", c.name()));
        out.push_str("| field | type | access | default | values |\n|---|---|---|---|---|\n");
        for f in c.fields() {
            let name = if f.ours {
                format!("`{}` (ours)", f.name)
            } else {
                format!("`{}`", f.name)
            };
            out.push_str(&format!(
                "| {name} | {} | {} | {} | {} |\n",
                ty(f),
                access(f),
                default(f),
                check(f)
            ));
        }
    }
    out.push('\n');
    out
}

#[test]
fn doc_tables_match_the_schema() {
    let doc = std::fs::read_to_string(doc_path()).expect("docs/pool-database.md");
    let start = doc.find(BEGIN).expect("schema:begin marker") + BEGIN.len();
    let end = doc.find(END).expect("schema:end marker");
    let want = tables();
    if std::env::var_os("REGENERATE_DOC_TABLES").is_some() {
        let new = format!("{}{want}{}", &doc[..start], &doc[end..]);
        std::fs::write(doc_path(), new).expect("write doc");
        return;
    }
    assert!(
        doc[start..end] == want,
        "docs/pool-database.md's tables differ from the schema: run with REGENERATE_DOC_TABLES=1"
    );
}
