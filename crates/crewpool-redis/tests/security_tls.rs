//! `rediss://` (feature `tls`): a worker reaches a TLS-only Redis port with an ACL user
//! from the URL and a private CA trusted through `RedisConfig::tls_root_cert`; a
//! server certificate it has no reason to trust is refused, without the password in
//! the error.
//!
//! Run by `cargo xtask ci` as `cargo test -p crewpool-redis --features tls --test
//! security_tls`. The certificates are made for the test with the `openssl` command
//! (`apt-get install openssl`).
#![cfg(feature = "tls")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crewpool_core::{Consumer, Delivery, Queue};
use crewpool_redis::testing::{RedisServer, free_port};
use crewpool_redis::{RedisConfig, RedisQueue};

const PASSWORD: &str = "Tls-s3cret-pa55word";

/// Runs `openssl` with `args` in `dir`, failing the test with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| {
            panic!("could not run openssl ({error}); install it with `apt-get install openssl`")
        });
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`ca.crt`) and a server certificate it signed for 127.0.0.1 (`server.crt`,
/// `server.key`), in `dir`.
fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=crewpool test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut request = vec!["req"];
    request.extend(ec);
    request.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &request);
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_private_ca() {
    let certs = std::env::temp_dir().join(format!("crewpool-tls-{}", std::process::id()));
    std::fs::create_dir_all(&certs).unwrap();
    make_certificates(&certs);
    let file = |name: &str| certs.join(name).display().to_string();
    let tls_port = free_port();
    let server = RedisServer::builder()
        .user("crew", PASSWORD)
        .default_user_off()
        .arg("--tls-port")
        .arg(&tls_port.to_string())
        .arg("--tls-cert-file")
        .arg(&file("server.crt"))
        .arg("--tls-key-file")
        .arg(&file("server.key"))
        .arg("--tls-ca-cert-file")
        .arg(&file("ca.crt"))
        .arg("--tls-auth-clients")
        .arg("no")
        .start();
    let ca = std::fs::read(certs.join("ca.crt")).unwrap();
    let url = format!("rediss://crew:{PASSWORD}@127.0.0.1:{tls_port}");

    // Trusting the private CA: jobs go through the TLS port and are acknowledged.
    let config = RedisConfig::new(url.as_str(), "tls").tls_root_cert(ca);
    assert!(!format!("{config:?}").contains(PASSWORD));
    let queue = RedisQueue::<u64>::connect(config).await.unwrap();
    for job in 1..=3 {
        queue.enqueue(&job).await.unwrap();
    }
    let mut consumer = queue.consumer().unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let received = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .expect("hang guard")
            .unwrap();
        seen.push(received.envelope.job);
        received.delivery.ack().await.unwrap();
    }
    seen.sort_unstable();
    assert_eq!(seen, [1, 2, 3]);
    // Seen from the plain port: nothing left waiting or leased.
    let pending = server.cli(&["LLEN", "crewpool:{tls}:pending"]);
    assert_eq!(pending.trim(), "0", "a job was left pending");
    let leased = server.cli(&["HLEN", "crewpool:{tls}:leased"]);
    assert_eq!(leased.trim(), "0", "a job was left leased");

    // Not trusting it: the certificate is refused, and the error keeps the password.
    let untrusted = RedisQueue::<u64>::connect(RedisConfig::new(url.as_str(), "tls")).await;
    let error = untrusted.expect_err("a server certificate from an unknown CA was accepted");
    let text = format!("{error} {error:?}");
    assert!(
        !text.contains(PASSWORD),
        "the error shows the password: {text}"
    );
    println!("untrusted CA: {error}");

    drop(consumer);
    drop(queue);
    drop(server);
    let _ = std::fs::remove_dir_all(&certs);
}
