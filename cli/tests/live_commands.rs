//! `xe` against the real `xapi-ha` agent: the record layout of the
//! reference (`xenapi.md` section 6), the param commands, vm-create and
//! vm-destroy, errors as xe prints them and their exit codes, and the
//! TLS fingerprint check (trust on first use, refusal on a mismatch).

mod live_support;

use live_support::{Agent, PASSWORD};

/// Checks xe's `multi_line_record` layout: width = 4 + longest label; the
/// first label padded on the right, the others on the left; records
/// followed by two blank lines. Returns the (name, tag, value) rows.
fn records(out: &str) -> Vec<Vec<(String, String, String)>> {
    assert!(
        out.ends_with("\n\n\n"),
        "records end with two blank lines: {out:?}"
    );
    out.split("\n\n\n")
        .filter(|r| !r.is_empty())
        .map(|rec| {
            let lines: Vec<&str> = rec.lines().collect();
            let width = lines[0].find(": ").expect("label: value");
            let mut rows = Vec::new();
            for (i, line) in lines.iter().enumerate() {
                let (label, value) = line.split_at(width);
                let value = value.strip_prefix(": ").expect("': ' after the label");
                let trimmed = label.trim();
                if i == 0 {
                    assert!(
                        label.starts_with(trimmed),
                        "first label left-aligned: {line:?}"
                    );
                } else {
                    assert!(label.ends_with(trimmed), "label right-aligned: {line:?}");
                }
                let (name, tag) = trimmed.split_once(" (").expect("name (TAG)");
                rows.push((
                    name.to_owned(),
                    tag.trim_end_matches(')').trim().to_owned(),
                    value.to_owned(),
                ));
            }
            let longest = lines
                .iter()
                .map(|l| l[..width].trim().len())
                .max()
                .unwrap_or(0);
            assert_eq!(
                width,
                longest + 4,
                "width is 4 + the longest label: {rec:?}"
            );
            rows
        })
        .collect()
}

fn field<'a>(rec: &'a [(String, String, String)], name: &str) -> &'a (String, String, String) {
    rec.iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("no field {name} in {rec:?}"))
}

#[test]
fn live_commands_on_the_unix_socket() {
    let agent = Agent::start();

    let pools = records(&agent.xe(&["pool-list"]).ok());
    assert_eq!(pools.len(), 1);
    let names: Vec<&str> = pools[0].iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names[0], "uuid");
    assert!(names.contains(&"master"), "{names:?}");
    let hosts = records(&agent.xe(&["host-list"]).ok());
    assert_eq!(hosts.len(), 1);
    let host_uuid = field(&hosts[0], "uuid").2.clone();
    assert_eq!(
        field(&pools[0], "master").2,
        host_uuid,
        "refs print as the target's uuid"
    );
    assert_eq!(
        field(&hosts[0], "name-label"),
        &("name-label".into(), "RW".into(), "live-host".into())
    );

    // vm-create prints the new uuid; vm-list shows it with xe's defaults.
    let vm = agent
        .xe(&[
            "vm-create",
            "name-label=web",
            "memory=1GiB",
            "driver=qemu",
            "driver-config:disk=/d",
        ])
        .ok();
    let vm = vm.trim().to_owned();
    assert_eq!(vm.len(), 36, "{vm:?}");
    let vms = records(&agent.xe(&["vm-list"]).ok());
    assert_eq!(vms.len(), 1);
    let names: Vec<&str> = vms[0].iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["uuid", "name-label", "power-state"]);
    assert_eq!(vms[0][0], ("uuid".into(), "RO".into(), vm.clone()));
    assert_eq!(
        vms[0][2],
        ("power-state".into(), "RO".into(), "halted".into())
    );

    // params=, --minimal, filters.
    let sel = records(
        &agent
            .xe(&["vm-list", "params=memory-static-max,name-label"])
            .ok(),
    );
    let names: Vec<&str> = sel[0].iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["name-label", "memory-static-max"],
        "schema order, not the order asked"
    );
    assert_eq!(field(&sel[0], "memory-static-max").2, "1073741824");
    agent.xe(&["vm-create", "name-label=db"]).ok();
    let minimal = agent
        .xe(&["vm-list", "--minimal", "params=name-label"])
        .ok();
    let mut got: Vec<&str> = minimal.trim_end().split(',').collect();
    got.sort_unstable();
    assert_eq!(got, ["db", "web"]);
    assert_eq!(
        agent.xe(&["vm-list", "name-label=web", "--minimal"]).ok(),
        format!("{vm}\n")
    );
    assert_eq!(
        agent
            .xe(&["vm-list", "name-label=nothing", "--minimal"])
            .ok(),
        "\n"
    );
    assert_eq!(agent.xe(&["vm-list", "name-label=nothing"]).code, 0);

    // param-list: every field, with access tags.
    let all = records(&agent.xe(&["vm-param-list", &format!("uuid={vm}")]).ok());
    assert_eq!(field(&all[0], "other-config").1, "MRW");
    assert_eq!(field(&all[0], "driver-config").2, "disk: /d");
    assert_eq!(field(&all[0], "resident-on").2, "<not in database>");

    // param-set / -get / -add / -remove / -clear.
    let u = format!("uuid={vm}");
    agent
        .xe(&[
            "vm-param-set",
            &u,
            "ha-restart-priority=restart",
            "order=3",
            "other-config:a=1",
        ])
        .ok();
    assert_eq!(
        agent.xe(&["vm-param-get", &u, "param-name=order"]).ok(),
        "3\n"
    );
    assert_eq!(
        agent
            .xe(&["vm-param-get", &u, "param-name=ha-restart-priority"])
            .ok(),
        "restart\n"
    );
    assert_eq!(
        agent
            .xe(&["vm-param-get", &u, "param-name=other-config", "param-key=a"])
            .ok(),
        "1\n"
    );
    agent
        .xe(&["vm-param-add", &u, "param-name=other-config", "b=2", "c=3"])
        .ok();
    agent
        .xe(&[
            "vm-param-remove",
            &u,
            "param-name=other-config",
            "param-key=a",
        ])
        .ok();
    assert_eq!(
        agent
            .xe(&["vm-param-get", &u, "param-name=other-config"])
            .ok(),
        "b: 2; c: 3\n"
    );
    agent
        .xe(&["vm-param-clear", &u, "param-name=other-config"])
        .ok();
    assert_eq!(
        agent
            .xe(&["vm-param-get", &u, "param-name=other-config"])
            .ok(),
        "\n"
    );

    // Errors: the API's as xe prints them (exit 6), usage (exit 1).
    let bogus = "uuid=00000000-0000-0000-0000-00000000beef";
    let out = agent.xe(&["vm-param-list", bogus]);
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains("00000000-0000-0000-0000-00000000beef"),
        "{out:?}"
    );
    let out = agent.xe(&["vm-param-set", &u, "order=three"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("order must be an integer"), "{out:?}");
    let out = agent.xe(&["vm-param-set", &u, "power-state=running"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("read-only"), "{out:?}");
    let out = agent.xe(&["vm-list", "name-lable=web"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("did you mean \"name-label\""),
        "{out:?}"
    );
    let out = agent.xe(&["vm-param-get", &u]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("param-name"), "{out:?}");
    let out = agent.xe(&[
        "vm-param-get",
        &u,
        "param-name=other-config",
        "param-key=zz",
    ]);
    assert_eq!(out.code, 3, "{out:?}");

    // Root on the Unix socket needs no password (the agent checks the
    // peer's uid); over TLS a wrong one is xe's "Authentication failed"
    // (exit 6) and none at all is refused before connecting (exit 7).
    let socket = agent.unix.to_str().unwrap().to_owned();
    assert_eq!(
        agent
            .run(&[
                "vm-list",
                "--socket",
                &socket,
                "name-label=web",
                "--minimal"
            ])
            .ok(),
        format!("{vm}\n")
    );
    let host = agent.https.ip().to_string();
    let port = agent.https.port().to_string();
    let tls = ["vm-list", "-s", &host, "-p", &port, "--trust-new"];
    let out = agent.run(&[&tls[..], &["-pw", "wrong"]].concat());
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stderr.starts_with("Authentication failed\n"), "{out:?}");
    let out = agent.run(&tls);
    assert_eq!(out.code, 7, "{out:?}");
    assert!(
        out.stderr.contains("Username/password must be specified"),
        "{out:?}"
    );
    let out = agent.run(&["vm-list", "--socket", "/nonexistent/sock"]);
    assert_eq!(out.code, 7, "{out:?}");

    // sr-create: an unknown type is the agent's SR_UNKNOWN_DRIVER, printed
    // as xe prints it.
    let out = agent.xe(&[
        "sr-create",
        "name-label=s",
        "type=nfs",
        "device-config:path=/x",
    ]);
    assert_eq!(out.code, 6, "{out:?}");
    assert_eq!(
        out.stderr,
        "The SR could not be connected because the driver was not recognised.\ndriver: nfs\n"
    );
    // type=file: the agent prepares the directory and records the SR.
    let sr_dir = agent.dir.path().join("sr");
    std::fs::create_dir(&sr_dir).unwrap();
    let sr = agent
        .xe(&[
            "sr-create",
            "name-label=shared files",
            "type=file",
            "shared=true",
            &format!("device-config:path={}", sr_dir.display()),
        ])
        .ok();
    let sr = sr.trim();
    let srs = records(&agent.xe(&["sr-list", "params=all"]).ok());
    assert_eq!(srs.len(), 1);
    assert_eq!(field(&srs[0], "uuid").2, sr);
    assert_eq!(field(&srs[0], "type").2, "file");
    assert_eq!(field(&srs[0], "shared").2, "true");
    assert_eq!(
        agent.xe(&["sr-list", "type=file", "--minimal"]).ok(),
        format!("{sr}\n")
    );
    assert_eq!(agent.xe(&["message-list"]).ok(), "");
    assert_eq!(records(&agent.xe(&["host-metrics-list"]).ok()).len(), 1);

    // vm-destroy, then the uuid is unknown.
    agent.xe(&["vm-destroy", &u]).ok();
    assert_eq!(agent.xe(&["vm-param-list", &u]).code, 6);
}

#[test]
fn live_tls_fingerprint_is_pinned() {
    let agent = Agent::start();
    let host = agent.https.ip().to_string();
    let port = agent.https.port().to_string();
    let base = [
        "-s",
        host.as_str(),
        "-p",
        port.as_str(),
        "-u",
        "root",
        "-pw",
        PASSWORD,
    ];
    let with = |extra: &[&str]| {
        let mut args: Vec<&str> = vec!["host-list", "--minimal"];
        args.extend_from_slice(&base);
        args.extend_from_slice(extra);
        agent.run(&args)
    };

    // A new host: refused, its fingerprint named, nothing remembered.
    let out = with(&[]);
    assert_eq!(out.code, 8, "{out:?}");
    assert!(out.stderr.contains("is not a known host"), "{out:?}");
    let fp = out
        .stderr
        .split_whitespace()
        .find_map(|w| w.strip_prefix("--fingerprint="))
        .expect("the fingerprint is named")
        .to_owned();
    assert_eq!(fp.len(), 95, "{fp}");
    assert!(!agent.known_hosts.exists());

    // The agent publishes the same fingerprint.
    let host_uuid = agent.xe(&["host-list", "--minimal"]).ok();
    let published = agent
        .xe(&[
            "host-param-get",
            &format!("uuid={}", host_uuid.trim()),
            "param-name=other-config",
            "param-key=tls_fingerprint",
        ])
        .ok();
    assert_eq!(published.trim(), fp);

    // A wrong --fingerprint is refused; the right one is accepted and
    // remembered; then no flag is needed.
    let wrong = format!("--fingerprint={}", "00:".repeat(31) + "00");
    let out = with(&[&wrong]);
    assert_eq!(out.code, 8, "{out:?}");
    assert!(out.stderr.contains("not the expected"), "{out:?}");
    assert_eq!(
        with(&[&format!("--fingerprint={}", fp.to_lowercase())]).ok(),
        host_uuid
    );
    assert!(
        std::fs::read_to_string(&agent.known_hosts)
            .unwrap()
            .contains(&fp)
    );
    assert_eq!(with(&[]).ok(), host_uuid);

    // A changed certificate (here: a different remembered one) is refused.
    std::fs::write(
        &agent.known_hosts,
        format!("{host}:{port} {}\n", "AB:".repeat(31) + "AB"),
    )
    .unwrap();
    let out = with(&[]);
    assert_eq!(out.code, 8, "{out:?}");
    assert!(out.stderr.contains("not the expected"), "{out:?}");
    assert!(out.stderr.contains(&fp), "{out:?}");
    // The operator checks the new fingerprint and gives it: accepted, and
    // it replaces the remembered one.
    assert_eq!(with(&[&format!("--fingerprint={fp}")]).ok(), host_uuid);
    assert_eq!(with(&[]).ok(), host_uuid);
    assert_eq!(
        std::fs::read_to_string(&agent.known_hosts).unwrap(),
        format!("{host}:{port} {fp}\n")
    );

    // -pwf: the password from the first line of a file.
    let pwf = agent.dir.path().join("pw");
    std::fs::write(&pwf, format!("{PASSWORD}\nignored\n")).unwrap();
    let pwf = pwf.to_str().unwrap();
    let out = agent.run(&[
        "host-list",
        "--minimal",
        "-s",
        &host,
        "-p",
        &port,
        "-pwf",
        pwf,
    ]);
    assert_eq!(out.ok(), host_uuid);

    // --trust-new on a fresh known-hosts file.
    std::fs::remove_file(&agent.known_hosts).unwrap();
    assert_eq!(with(&["--trust-new"]).ok(), host_uuid);
    assert_eq!(with(&[]).ok(), host_uuid);
}

/// A member answers the login with `HOST_IS_SLAVE [master address]`; `xe`
/// follows it to the master (same port, the fingerprint rules applied
/// there too). The master listens on 127.0.0.2 and the member on
/// 127.0.0.1, on the same port.
#[test]
fn live_member_redirects_to_the_master() {
    let port = std::net::TcpListener::bind("127.0.0.2:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.2")
        .port();
    let master = Agent::start_with(
        "6f2b1c2e-8f33-4e4d-9a1c-0c7c2d1e5f0a",
        &format!("127.0.0.2:{port}"),
    );
    let member = Agent::start_with(
        "6f2b1c2e-8f33-4e4d-9a1c-0c7c2d1e5f0b",
        &format!("127.0.0.1:{port}"),
    )
    .into_member("127.0.0.2");
    let p = port.to_string();
    let args = [
        "host-list",
        "--minimal",
        "-s",
        "127.0.0.1",
        "-p",
        &p,
        "-pw",
        PASSWORD,
    ];
    // Neither host is known: the refusal names the member first.
    let out = member.run(&args);
    assert_eq!(out.code, 8, "{out:?}");
    assert!(out.stderr.contains("127.0.0.1:"), "{out:?}");
    let mut trusting = args.to_vec();
    trusting.push("--trust-new");
    assert_eq!(
        member.run(&trusting).ok(),
        "6f2b1c2e-8f33-4e4d-9a1c-0c7c2d1e5f0a\n",
        "the answer comes from the master's database"
    );
    let known = std::fs::read_to_string(&member.known_hosts).unwrap();
    assert!(known.contains(&format!("127.0.0.2:{port} ")), "{known}");
    assert!(known.contains(&format!("127.0.0.1:{port} ")), "{known}");
    // Over the member's Unix socket too.
    let socket = member.unix.to_str().unwrap().to_owned();
    let out = member.run(&[
        "host-list",
        "--minimal",
        "--socket",
        &socket,
        "-p",
        &p,
        "-pw",
        PASSWORD,
    ]);
    assert_eq!(
        out.stdout, "6f2b1c2e-8f33-4e4d-9a1c-0c7c2d1e5f0a\n",
        "{out:?}"
    );

    // `--fingerprint=` is the -s host's: with a fresh known-hosts file and
    // the member's fingerprint, the member is accepted and the unknown
    // master refused, named with its own fingerprint. Remembered once
    // directly, the way through the member works without flags.
    let fingerprint_of = |addr: &str| {
        known
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{addr}:{port} ")))
            .expect("remembered")
            .to_owned()
    };
    let (member_fp, master_fp) = (fingerprint_of("127.0.0.1"), fingerprint_of("127.0.0.2"));
    assert_ne!(member_fp, master_fp);
    std::fs::remove_file(&member.known_hosts).unwrap();
    let given = format!("--fingerprint={member_fp}");
    let mut with_member_fp = args.to_vec();
    with_member_fp.push(&given);
    let out = member.run(&with_member_fp);
    assert_eq!(out.code, 8, "{out:?}");
    assert!(
        out.stderr
            .contains("redirected to its pool master 127.0.0.2"),
        "{out:?}"
    );
    assert!(out.stderr.contains(&master_fp), "{out:?}");
    let direct = format!("--fingerprint={master_fp}");
    let out = member.run(&[
        "host-list",
        "--minimal",
        "-s",
        "127.0.0.2",
        "-p",
        &p,
        "-pw",
        PASSWORD,
        &direct,
    ]);
    assert_eq!(out.ok(), "6f2b1c2e-8f33-4e4d-9a1c-0c7c2d1e5f0a\n");
    assert_eq!(
        member.run(&args).ok(),
        "6f2b1c2e-8f33-4e4d-9a1c-0c7c2d1e5f0a\n",
        "both hosts remembered: no flag needed"
    );
    drop(master);
}
