//! Garbage collection on demand (the API and `wharf gc`) and the audit log (the API and `wharf audit`): what no
//! version or link references is reclaimed after the grace period and reported in bytes; a push of the same layer
//! while GC runs on it, repeated, never ends with a missing blob; afterwards `wharf scrub` finds nothing wrong.

use std::time::Duration;

use wharf_tests::{Server, agent, basic, ok, sha256_hex, start_with_token, status_and_text, wharf};

/// A short grace so the test can wait it out; no scheduled runs, so every run is one the test started.
const CONFIG: &str = "[storage]\ngc_grace = \"1s\"\ngc_interval = \"0s\"\n\n\
                      [[repository]]\nname = \"docker\"\nformat = \"docker\"\n";

struct Oci<'a> {
    server: &'a Server,
    auth: String,
}

impl Oci<'_> {
    fn push_blob(&self, bytes: &[u8]) -> String {
        let digest = format!("sha256:{}", sha256_hex(bytes));
        let (status, text) = status_and_text(
            agent()
                .post(
                    &self
                        .server
                        .url(&format!("/v2/docker/app/blobs/uploads/?digest={digest}")),
                )
                .header("authorization", &self.auth)
                .header("content-type", "application/octet-stream")
                .send(bytes)
                .unwrap(),
        );
        assert_eq!(status, 201, "blob push: {text}");
        digest
    }

    /// Pushes the config and the layer, then a manifest of them; its digest.
    fn push_image(&self, layer: &[u8]) -> String {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let config_digest = self.push_blob(config);
        let layer_digest = self.push_blob(layer);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": config_digest, "size": config.len() },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                         "digest": layer_digest, "size": layer.len() }],
        })
        .to_string();
        let (status, text) = status_and_text(
            agent()
                .put(&self.server.url("/v2/docker/app/manifests/latest"))
                .header("authorization", &self.auth)
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .send(manifest.as_bytes())
                .unwrap(),
        );
        assert_eq!(status, 201, "manifest push: {text}");
        format!("sha256:{}", sha256_hex(manifest.as_bytes()))
    }

    fn delete(&self, what: &str) {
        let (status, text) = status_and_text(
            agent()
                .delete(&self.server.url(&format!("/v2/docker/app/{what}")))
                .header("authorization", &self.auth)
                .call()
                .unwrap(),
        );
        assert_eq!(status, 202, "DELETE {what}: {text}");
    }

    /// Deletes the image and the links of its blobs: nothing references them any more.
    fn forget(&self, manifest: &str, layer: &[u8]) {
        self.delete(&format!("manifests/{manifest}"));
        self.delete(&format!(
            "blobs/sha256:{}",
            sha256_hex(br#"{"architecture":"amd64","os":"linux"}"#)
        ));
        self.delete(&format!("blobs/sha256:{}", sha256_hex(layer)));
    }

    fn layer_is_whole(&self, layer: &[u8]) -> bool {
        let mut response = agent()
            .get(&self.server.url(&format!(
                "/v2/docker/app/blobs/sha256:{}",
                sha256_hex(layer)
            )))
            .header("authorization", &self.auth)
            .call()
            .unwrap();
        response.status() == 200 && response.body_mut().read_to_vec().unwrap() == layer
    }
}

fn gc(server: &Server, token: &str) -> serde_json::Value {
    let (status, text) = status_and_text(
        agent()
            .post(&server.url("/api/v1/gc"))
            .header("authorization", &format!("Bearer {token}"))
            .send_empty()
            .unwrap(),
    );
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn gc_reclaims_the_unreferenced_and_never_breaks_a_push() {
    let dir = tempfile::tempdir().unwrap();
    let (server, password, token) = start_with_token(dir.path(), CONFIG);
    let oci = Oci {
        server: &server,
        auth: basic("admin", &password),
    };
    let layer: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();

    // Referenced: nothing to reclaim. Unreferenced, within the grace period: still nothing.
    let manifest = oci.push_image(&layer);
    assert_eq!(gc(&server, &token)["blobs"], 0);
    oci.forget(&manifest, &layer);
    assert_eq!(gc(&server, &token)["blobs"], 0);

    // Past the grace period, with the CLI: the manifest, the config and the layer go, and their bytes are counted.
    std::thread::sleep(Duration::from_millis(2100));
    let out = ok(wharf().args(["gc", "--server", &server.url(""), "--token", &token]));
    assert!(out.starts_with("reclaimed 3 blobs, "), "{out}");
    let bytes: u64 = out.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(bytes > layer.len() as u64, "{out}");
    assert!(!oci.layer_is_whole(&layer));

    // The same layer pushed again while GC runs on it, many times: every push succeeds and leaves a whole blob.
    for round in 0..6 {
        let manifest = oci.push_image(&layer);
        oci.forget(&manifest, &layer);
        std::thread::sleep(Duration::from_millis(2100));
        let collector = {
            let url = server.url("/api/v1/gc");
            let token = token.clone();
            std::thread::spawn(move || {
                agent()
                    .post(&url)
                    .header("authorization", &format!("Bearer {token}"))
                    .send_empty()
                    .unwrap()
                    .status()
            })
        };
        if round % 2 == 1 {
            std::thread::sleep(Duration::from_millis(5));
        }
        oci.push_image(&layer);
        assert_eq!(collector.join().unwrap(), 200);
        assert!(oci.layer_is_whole(&layer), "round {round}");
    }

    // The audit log shows the runs, newest first, through the API and the CLI; a wrong token is refused.
    let (status, text) = status_and_text(
        agent()
            .get(&server.url("/api/v1/audit?limit=5"))
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .unwrap(),
    );
    assert_eq!(status, 200);
    let events: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(events.as_array().unwrap().len(), 5);
    assert_eq!(events[0]["action"], "PUT docker", "{text}");
    assert_eq!(events[0]["target"], "docker/app/manifests/latest", "{text}");
    let out = ok(wharf().args([
        "audit",
        "--limit",
        "100",
        "--server",
        &server.url(""),
        "--token",
        &token,
    ]));
    assert!(
        out.lines()
            .any(|l| l.contains("admin  gc  3 blobs, ") && l.ends_with("bytes reclaimed")),
        "{out}"
    );
    let refused = wharf()
        .args(["gc", "--server", &server.url(""), "--token", "wharf_nope"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Stopped, the store is whole.
    let data = dir.path().join("data");
    assert!(server.terminate().success());
    let scrub = ok(wharf().arg("scrub").arg("--data").arg(&data));
    assert!(scrub.contains("0 missing"), "{scrub}");
}
