//! The status page of a real pool database.

use super::*;
use crate::metrics::fixture::{Fixture, host_uuid};
use crate::value::Value;

fn opts() -> PageOptions {
    PageOptions {
        refresh_seconds: 5,
        generated_at: "20250319T04:16:24Z".into(),
    }
}

/// The `<tr>` of the table `id` whose text contains `key`.
fn row<'a>(page: &'a str, id: &str, key: &str) -> Option<&'a str> {
    let start = page.find(&format!("<table id=\"{id}\">"))?;
    let table = &page[start..start + page[start..].find("</table>")?];
    table.split("<tr>").find(|r| r.contains(key))
}

#[test]
fn page_shows_pool_hosts_vms_and_messages_and_refreshes() {
    let mut f = Fixture::new(2, 1);
    let web = f.vm("web", 1, "restart");
    let h0 = f.hosts[0];
    f.run(web, h0);
    let _ = f.vm("idle", 1, "best-effort");
    f.host_metric(0, "ha_heartbeat_latency_ms", Value::Float(2.25));
    f.message(
        "HA_HOST_FAILED",
        &host_uuid(1),
        "h1 was fenced: lease expired",
    );
    f.host_metric(1, "live", Value::Bool(false));
    let page = render(&f.db, &opts());
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
    // No external assets, no script.
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("src="), "{page}");
    assert!(!page.contains("href="), "{page}");
    let master = row(&page, "summary", "Master").expect("master row");
    assert!(master.contains("<td class=\"\">h0</td>"), "{master}");
    let liveset = row(&page, "summary", "Liveset").expect("liveset row");
    assert!(liveset.contains("1 of 2: h0"), "{liveset}");
    let plan = row(&page, "summary", "Plan exists for").expect("plan row");
    assert!(plan.contains("target 1"), "{plan}");
    let h0_row = row(&page, "hosts", &host_uuid(0)).expect("h0 row");
    assert!(h0_row.contains("<td class=\"yes\">yes</td>"), "{h0_row}");
    assert!(
        h0_row.contains("2.2 ms") || h0_row.contains("2.3 ms"),
        "{h0_row}"
    );
    assert!(h0_row.contains("never"), "{h0_row}");
    let h1_row = row(&page, "hosts", &host_uuid(1)).expect("h1 row");
    assert!(h1_row.contains("<td class=\"no\">no</td>"), "{h1_row}");
    assert!(
        h1_row.contains("HA_HOST_FAILED at ") && h1_row.contains("lease expired"),
        "{h1_row}"
    );
    let web_row = row(&page, "vms", ">web<").expect("web row");
    assert!(web_row.contains("Running"), "{web_row}");
    assert!(web_row.contains("<td>started</td>"), "{web_row}");
    assert!(web_row.contains("<td>h0</td>"), "{web_row}");
    assert!(web_row.contains("<td>restart</td>"), "{web_row}");
    let idle_row = row(&page, "vms", ">idle<").expect("idle row");
    assert!(idle_row.contains("Halted") && idle_row.contains("best-effort"));
    let msg = row(&page, "messages", "HA_HOST_FAILED").expect("message row");
    assert!(msg.contains(&host_uuid(1)), "{msg}");
}

#[test]
fn every_text_from_the_database_is_escaped() {
    let mut f = Fixture::new(1, 0);
    let evil = "<script>alert('x')</script>&\"";
    let _ = f.vm(evil, 1, "");
    f.message("CUSTOM", &host_uuid(0), "<img src=x onerror=alert(1)>");
    let page = render(&f.db, &opts());
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"),
        "{page}"
    );
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
}

#[test]
fn latest_messages_are_newest_first_and_bounded() {
    let mut f = Fixture::new(1, 0);
    for i in 0..(MESSAGES_SHOWN + 5) {
        f.message(&format!("M{i:03}"), &host_uuid(0), "b");
    }
    let page = render(&f.db, &opts());
    let start = page.find("<table id=\"messages\">").expect("messages");
    let table = &page[start..];
    let rows = table[..table.find("</table>").expect("end")]
        .matches("<tr>")
        .count();
    assert_eq!(rows, MESSAGES_SHOWN + 1, "header and {MESSAGES_SHOWN} rows");
    let newest = format!("M{:03}", MESSAGES_SHOWN + 4);
    assert!(table.contains(&newest));
    assert!(!table.contains("<td>M000</td>"));
    assert!(table.find(&newest) < table.find(&format!("M{:03}", MESSAGES_SHOWN + 3)));
}
