//! The master's read-only status page (`GET /`, docs/api.md): one HTML
//! document, no external assets, no JavaScript, refreshed by a meta tag.
//! [`render`] is pure: a database snapshot (and the page's options) in,
//! the page out; every text from the database is escaped (`html::esc`).

pub mod html;

use crate::db::{Class, Database};
use crate::ha::live_plan;
use crate::ha::view::pool_ref;
use crate::metrics::pool_series::{boolean, float, host_metrics, int, reference, text};
use crate::value::{Ref, Value};
use html::Page;

/// How many of the latest messages the page lists.
pub const MESSAGES_SHOWN: usize = 20;

/// Message names that tell of a host's fence (the last one per host is
/// shown in its row).
pub const FENCE_MESSAGES: &[&str] = &[
    "HA_HOST_FAILED",
    "HA_HOST_WAS_FENCED",
    "HA_HOST_FENCE_REASON",
];

/// What the page needs besides the database.
#[derive(Clone, Debug)]
pub struct PageOptions {
    /// Seconds between reloads (the meta refresh).
    pub refresh_seconds: u32,
    /// When the page was made (shown; the wall clock, read by the caller).
    pub generated_at: String,
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em;color:#222}\
table{border-collapse:collapse;margin-bottom:1.5em}\
th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left;font-size:.9em}\
th{background:#eee}.yes{background:#dfd}.no{background:#fdd}\
.warn{background:#ffd}h1{font-size:1.4em}h2{font-size:1.15em}";

fn yes_no(b: bool) -> (&'static str, &'static str) {
    if b { ("yes", "yes") } else { ("no", "no") }
}

fn name_of_host(db: &Database, h: Ref) -> String {
    if db.get(Class::Host, h).is_none() {
        return String::new();
    }
    let n = text(db, Class::Host, h, "name_label");
    if n.is_empty() {
        text(db, Class::Host, h, "uuid")
    } else {
        n
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.1} ms"))
}

fn date(db: &Database, class: Class, r: Ref, name: &str) -> String {
    match db.field(class, r, name) {
        Some(Value::DateTime(d)) => d.to_string(),
        _ => String::new(),
    }
}

/// The page for `db`.
#[must_use]
pub fn render(db: &Database, opts: &PageOptions) -> String {
    let mut p = Page::default();
    let pool = pool_ref(db);
    let pool_name = pool.map_or_else(String::new, |r| text(db, Class::Pool, r, "name_label"));
    p.raw("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    p.raw(&format!(
        "<meta http-equiv=\"refresh\" content=\"{}\">",
        opts.refresh_seconds
    ));
    p.raw("<title>")
        .text(&format!("xapi-ha status: {pool_name}"))
        .raw("</title><style>")
        .raw(STYLE)
        .raw("</style></head><body>");
    p.el("h1", &format!("Pool {pool_name}"));
    p.raw("<p>").text(&format!(
        "Generated {}; refreshes every {} s.",
        opts.generated_at, opts.refresh_seconds
    ));
    p.raw("</p>");
    summary(&mut p, db, pool);
    hosts(&mut p, db);
    vms(&mut p, db);
    messages(&mut p, db);
    p.raw("</body></html>\n");
    p.finish()
}

fn summary(p: &mut Page, db: &Database, pool: Option<Ref>) {
    let Some(pool) = pool else {
        p.el("p", "No pool in the database.");
        return;
    };
    let master = reference(db, Class::Pool, pool, "master");
    let ha = boolean(db, Class::Pool, pool, "ha_enabled");
    let live: Vec<String> = db
        .objects(Class::Host)
        .filter(|(h, _)| {
            host_metrics(db, *h).is_some_and(|m| boolean(db, Class::HostMetrics, m, "live"))
        })
        .map(|(h, _)| name_of_host(db, h))
        .collect();
    let plan = live_plan::compute(db);
    let target = int(db, Class::Pool, pool, "ha_host_failures_to_tolerate");
    let exists_for = int(db, Class::Pool, pool, "ha_plan_exists_for");
    let overcommitted = boolean(db, Class::Pool, pool, "ha_overcommitted");
    let limiting: Vec<String> = plan
        .limiting_failure_set
        .iter()
        .map(|u| {
            db.by_uuid(&u.hyphenated().to_string())
                .map_or_else(|| u.to_string(), |(_, r)| name_of_host(db, r))
        })
        .collect();
    p.el("h2", "Pool");
    p.raw("<table id=\"summary\">");
    let row = |p: &mut Page, k: &str, v: &str, cls: &str| {
        p.raw("<tr>").el("th", k).td_class(cls, v).raw("</tr>");
    };
    row(p, "Master", &name_of_host(db, master), "");
    let (c, t) = yes_no(ha);
    row(p, "HA enabled", t, c);
    row(
        p,
        "Master epoch",
        &int(db, Class::Pool, pool, "ha_master_epoch").to_string(),
        "",
    );
    row(
        p,
        "Liveset",
        &format!(
            "{} of {}: {}",
            live.len(),
            db.count(Class::Host),
            live.join(", ")
        ),
        "",
    );
    row(
        p,
        "Plan exists for",
        &format!(
            "{exists_for} (target {target}; the pool tolerates {})",
            plan.max_host_failures
        ),
        if exists_for < target { "warn" } else { "" },
    );
    // Green when not overcommitted.
    let (_, t) = yes_no(overcommitted);
    row(
        p,
        "Overcommitted",
        t,
        if overcommitted { "no" } else { "yes" },
    );
    row(
        p,
        "Limiting failure set",
        &if limiting.is_empty() {
            "none".to_owned()
        } else {
            limiting.join(", ")
        },
        "",
    );
    let warnings = match db.field(Class::Pool, pool, "ha_warnings") {
        Some(Value::Set(v)) => v
            .iter()
            .filter_map(|w| w.as_str().map(str::to_owned))
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    if !warnings.is_empty() {
        row(p, "HA warnings", &warnings.join("; "), "warn");
    }
    p.raw("</table>");
}

/// The latest fence message about the host with `uuid`: "NAME at DATE: body".
fn last_fence(db: &Database, uuid: &str) -> String {
    db.objects(Class::Message)
        .filter(|(m, _)| {
            text(db, Class::Message, *m, "obj_uuid") == uuid
                && FENCE_MESSAGES.contains(&text(db, Class::Message, *m, "name").as_str())
        })
        .max_by_key(|(m, o)| (date(db, Class::Message, *m, "timestamp"), o.created()))
        .map(|(m, _)| {
            format!(
                "{} at {}: {}",
                text(db, Class::Message, m, "name"),
                date(db, Class::Message, m, "timestamp"),
                text(db, Class::Message, m, "body")
            )
        })
        .unwrap_or_else(|| "never".to_owned())
}

fn hosts(p: &mut Page, db: &Database) {
    p.el("h2", "Hosts");
    p.raw("<table id=\"hosts\">");
    p.head_row(&[
        "Host",
        "UUID",
        "Live",
        "Enabled",
        "Heartbeat latency",
        "Statefile latency",
        "Last fence",
    ]);
    let mut rows: Vec<Ref> = db.objects(Class::Host).map(|(h, _)| h).collect();
    rows.sort_by_key(|h| name_of_host(db, *h));
    for h in rows {
        let uuid = text(db, Class::Host, h, "uuid");
        let m = host_metrics(db, h);
        let live = m.is_some_and(|m| boolean(db, Class::HostMetrics, m, "live"));
        let hb = m.and_then(|m| float(db, Class::HostMetrics, m, "ha_heartbeat_latency_ms"));
        let sf = m.and_then(|m| float(db, Class::HostMetrics, m, "ha_statefile_latency_ms"));
        p.raw("<tr>").el("td", &name_of_host(db, h)).el("td", &uuid);
        let (c, t) = yes_no(live);
        p.td_class(c, t);
        let (c, t) = yes_no(boolean(db, Class::Host, h, "enabled"));
        p.td_class(c, t);
        p.el("td", &ms(hb))
            .el("td", &ms(sf))
            .el("td", &last_fence(db, &uuid))
            .raw("</tr>");
    }
    p.raw("</table>");
}

fn vms(p: &mut Page, db: &Database) {
    p.el("h2", "VMs");
    p.raw("<table id=\"vms\">");
    p.head_row(&[
        "VM",
        "UUID",
        "Power state",
        "HA state",
        "Host",
        "Restart priority",
        "Always run",
        "Order",
    ]);
    let mut rows: Vec<Ref> = db
        .objects(Class::Vm)
        .map(|(v, _)| v)
        .filter(|v| {
            !boolean(db, Class::Vm, *v, "is_a_template")
                && !boolean(db, Class::Vm, *v, "is_control_domain")
        })
        .collect();
    rows.sort_by_key(|v| text(db, Class::Vm, *v, "name_label"));
    for v in rows {
        let power = text(db, Class::Vm, v, "power_state");
        let cls = if power == "Running" { "yes" } else { "" };
        p.raw("<tr>")
            .el("td", &text(db, Class::Vm, v, "name_label"))
            .el("td", &text(db, Class::Vm, v, "uuid"))
            .td_class(cls, &power)
            .el("td", &text(db, Class::Vm, v, "ha_state"))
            .el(
                "td",
                &name_of_host(db, reference(db, Class::Vm, v, "resident_on")),
            )
            .el("td", &text(db, Class::Vm, v, "ha_restart_priority"))
            .el("td", yes_no(boolean(db, Class::Vm, v, "ha_always_run")).1)
            .el("td", &int(db, Class::Vm, v, "order").to_string())
            .raw("</tr>");
    }
    p.raw("</table>");
}

fn messages(p: &mut Page, db: &Database) {
    p.el("h2", "Latest messages");
    let mut all: Vec<(String, u64, Ref)> = db
        .objects(Class::Message)
        .map(|(m, o)| (date(db, Class::Message, m, "timestamp"), o.created(), m))
        .collect();
    all.sort_by(|a, b| (&b.0, b.1).cmp(&(&a.0, a.1)));
    p.raw("<table id=\"messages\">");
    p.head_row(&["Time", "Name", "Priority", "Object", "Body"]);
    for (time, _, m) in all.into_iter().take(MESSAGES_SHOWN) {
        p.raw("<tr>")
            .el("td", &time)
            .el("td", &text(db, Class::Message, m, "name"))
            .el("td", &int(db, Class::Message, m, "priority").to_string())
            .el(
                "td",
                &format!(
                    "{} {}",
                    text(db, Class::Message, m, "cls"),
                    text(db, Class::Message, m, "obj_uuid")
                ),
            )
            .el("td", &text(db, Class::Message, m, "body"))
            .raw("</tr>");
    }
    p.raw("</table>");
}

#[cfg(test)]
mod tests;
