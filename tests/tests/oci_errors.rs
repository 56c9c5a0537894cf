//! Bad input to the OCI registry: each case gets the spec's status and error code, and nothing is stored. Also a
//! client that goes away mid-upload: no blob appears and the session resumes where the bytes stopped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use wharf_tests::{Server, agent, basic, sha256_hex};

struct Registry {
    server: Server,
    _dir: tempfile::TempDir,
    auth: String,
}

fn registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let auth = basic("admin", server.admin_password.as_deref().unwrap());
    Registry {
        server,
        _dir: dir,
        auth,
    }
}

/// Status, the first error code of an OCI error body (or ""), and the response's headers.
struct Reply {
    status: u16,
    code: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Registry {
    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            self.server.url(path)
        };
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", &self.auth);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = agent().run(request.body(body.to_vec()).unwrap()).unwrap();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = response.body_mut().read_to_vec().unwrap();
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_string))
            .unwrap_or_default();
        Reply {
            status: response.status().as_u16(),
            code,
            headers,
            body,
        }
    }

    /// Starts an upload session; returns its Location.
    fn start(&self, image: &str) -> String {
        let reply = self.send(
            "POST",
            &format!("/v2/docker/{image}/blobs/uploads/"),
            &[],
            b"",
        );
        assert_eq!(reply.status, 202);
        reply.header("location").unwrap().to_string()
    }

    fn blob_count(&self) -> u64 {
        let text = String::from_utf8(self.send("GET", "/metrics", &[], b"").body).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("wharf_blobs "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Sends a request line and headers exactly as written (no client normalizes the path).
    fn raw(&self, request: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.server.addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, response)
    }
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

const WRONG: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn wrong_digests_and_algorithms() {
    let r = registry();
    let before = r.blob_count();
    // Monolithic POST, and POST then PUT, with a digest the body does not have.
    let reply = r.send(
        "POST",
        &format!("/v2/docker/app/blobs/uploads/?digest={WRONG}"),
        &[],
        b"data",
    );
    assert_eq!((reply.status, reply.code.as_str()), (400, "DIGEST_INVALID"));
    let location = r.start("app");
    let reply = r.send("PUT", &format!("{location}?digest={WRONG}"), &[], b"data");
    assert_eq!((reply.status, reply.code.as_str()), (400, "DIGEST_INVALID"));
    // Chunks first, then a PUT with the wrong digest: refused, and the session keeps its bytes for a right one.
    let location = r.start("app");
    assert_eq!(r.send("PATCH", &location, &[], b"chunked data").status, 202);
    let reply = r.send("PUT", &format!("{location}?digest={WRONG}"), &[], b"");
    assert_eq!((reply.status, reply.code.as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(r.blob_count(), before, "nothing stored");
    let reply = r.send(
        "PUT",
        &format!("{location}?digest={}", digest_of(b"chunked data")),
        &[],
        b"",
    );
    assert_eq!(reply.status, 201);
    assert_eq!(r.blob_count(), before + 1);

    // Digest algorithms other than sha256, and malformed digests.
    for bad in [
        "sha512:abcd",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256:XYZ",
        "nocolon",
    ] {
        let reply = r.send("GET", &format!("/v2/docker/app/blobs/{bad}"), &[], b"");
        assert_eq!(
            (reply.status, reply.code.as_str()),
            (400, "DIGEST_INVALID"),
            "{bad}"
        );
        let reply = r.send(
            "POST",
            &format!("/v2/docker/app/blobs/uploads/?digest={bad}"),
            &[],
            b"x",
        );
        assert_eq!(
            (reply.status, reply.code.as_str()),
            (400, "DIGEST_INVALID"),
            "{bad}"
        );
    }
    // A PUT that finishes an upload without any digest.
    let location = r.start("app");
    let reply = r.send("PUT", &location, &[], b"data");
    assert_eq!((reply.status, reply.code.as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(r.blob_count(), before + 1);
}

#[test]
fn invalid_names_and_traversal() {
    let r = registry();
    for path in [
        "/v2/docker/UPPER/tags/list",
        "/v2/docker/a-/tags/list",
        "/v2/docker/a__-b/tags/list",
    ] {
        let reply = r.send("GET", path, &[], b"");
        assert_eq!(
            (reply.status, reply.code.as_str()),
            (400, "NAME_INVALID"),
            "{path}"
        );
    }
    for path in [
        "/v2/docker/a/../b/manifests/1",
        "/v2/docker/%2e%2e/etc/manifests/1",
        "/v2/docker/a/%2E%2E/b/blobs/uploads/",
        "/v2/docker/a/.%2e/b/tags/list",
    ] {
        let (status, response) = r.raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(status, 400, "{path}: {response}");
        assert!(response.contains("NAME_INVALID"), "{path}: {response}");
    }
    let reply = r.send("GET", "/v2/nosuchrepo/app/tags/list", &[], b"");
    assert_eq!((reply.status, reply.code.as_str()), (404, "NAME_UNKNOWN"));
    let reply = r.send("GET", "/v2/docker/app/manifests/-bad-tag", &[], b"");
    assert_eq!((reply.status, reply.code.as_str()), (400, "TAG_INVALID"));
}

#[test]
fn bad_manifests_store_nothing() {
    let r = registry();
    let config = b"{}";
    let location = r.start("app");
    assert_eq!(
        r.send(
            "PUT",
            &format!("{location}?digest={}", digest_of(config)),
            &[],
            config
        )
        .status,
        201
    );
    let before = r.blob_count();
    let ct = [("content-type", OCI_MANIFEST)];
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("not JSON", b"{not json".to_vec(), 400, "MANIFEST_INVALID"),
        ("no config", br#"{"schemaVersion":2,"layers":[]}"#.to_vec(), 400, "MANIFEST_INVALID"),
        (
            "media types disagree",
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_vec(),
            400,
            "MANIFEST_INVALID",
        ),
        (
            "missing layer",
            format!(
                r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{WRONG}","size":1}}]}}"#,
                digest_of(config)
            )
            .into_bytes(),
            400,
            "MANIFEST_BLOB_UNKNOWN",
        ),
        ("over the 4 MiB limit", vec![b' '; 4 * 1024 * 1024 + 1], 413, "SIZE_INVALID"),
    ];
    for (what, body, status, code) in cases {
        let reply = r.send("PUT", "/v2/docker/app/manifests/1.0", &ct, &body);
        assert_eq!(
            (reply.status, reply.code.as_str()),
            (status, code),
            "{what}"
        );
    }
    // A digest reference the body does not match.
    let good = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[]}}"#,
        digest_of(config)
    );
    let reply = r.send(
        "PUT",
        &format!("/v2/docker/app/manifests/{WRONG}"),
        &ct,
        good.as_bytes(),
    );
    assert_eq!((reply.status, reply.code.as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(r.blob_count(), before, "nothing stored");
    let reply = r.send("GET", "/v2/docker/app/manifests/1.0", &[], b"");
    assert_eq!(
        (reply.status, reply.code.as_str()),
        (404, "MANIFEST_UNKNOWN")
    );
    // The valid one goes in, tag and all; deleting the tag keeps the manifest, deleting the manifest removes both.
    let reply = r.send("PUT", "/v2/docker/app/manifests/1.0", &ct, good.as_bytes());
    assert_eq!(reply.status, 201);
    let digest = digest_of(good.as_bytes());
    assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(
        r.send("DELETE", "/v2/docker/app/manifests/1.0", &[], b"")
            .status,
        202
    );
    assert_eq!(
        r.send("GET", "/v2/docker/app/manifests/1.0", &[], b"")
            .status,
        404
    );
    assert_eq!(
        r.send(
            "GET",
            &format!("/v2/docker/app/manifests/{digest}"),
            &[],
            b""
        )
        .body,
        good.as_bytes()
    );
    assert_eq!(
        r.send("PUT", "/v2/docker/app/manifests/2.0", &ct, good.as_bytes())
            .status,
        201
    );
    assert_eq!(
        r.send(
            "DELETE",
            &format!("/v2/docker/app/manifests/{digest}"),
            &[],
            b""
        )
        .status,
        202
    );
    assert_eq!(
        r.send("GET", "/v2/docker/app/manifests/2.0", &[], b"")
            .status,
        404
    );
}

#[test]
fn upload_sessions_out_of_order_and_unknown() {
    let r = registry();
    let location = r.start("app");
    let reply = r.send(
        "PATCH",
        &location,
        &[("content-range", "0-9")],
        b"0123456789",
    );
    assert_eq!((reply.status, reply.header("range")), (202, Some("0-9")));
    let reply = r.send(
        "PATCH",
        &location,
        &[("content-range", "20-29")],
        b"abcdefghij",
    );
    assert_eq!(
        (reply.status, reply.code.as_str()),
        (416, "BLOB_UPLOAD_INVALID")
    );
    assert_eq!(
        reply.header("range"),
        Some("0-9"),
        "the 416 says where the upload stands"
    );
    assert!(reply.header("location").is_some());
    let reply = r.send(
        "PATCH",
        &location,
        &[("content-range", "10-19")],
        b"abcdefghij",
    );
    assert_eq!(reply.status, 202);
    let whole = b"0123456789abcdefghij";
    let reply = r.send(
        "PUT",
        &format!("{location}?digest={}", digest_of(whole)),
        &[],
        b"",
    );
    assert_eq!(reply.status, 201);

    // Unknown sessions: made up, finished already, or another image's.
    let unknown = "/v2/docker/app/blobs/uploads/0123456789abcdef0123456789abcdef";
    for (method, path) in [
        ("PATCH", unknown.to_string()),
        ("GET", unknown.to_string()),
        ("PATCH", location.clone()),
    ] {
        let reply = r.send(method, &path, &[], b"x");
        assert_eq!(
            (reply.status, reply.code.as_str()),
            (404, "BLOB_UPLOAD_UNKNOWN"),
            "{method} {path}"
        );
    }
    let other = r.start("other");
    let stolen = other.replace("/docker/other/", "/docker/app/");
    let reply = r.send("PATCH", &stolen, &[], b"x");
    assert_eq!(
        (reply.status, reply.code.as_str()),
        (404, "BLOB_UPLOAD_UNKNOWN")
    );
    // Cancelled sessions are gone.
    assert_eq!(r.send("DELETE", &other, &[], b"").status, 204);
    assert_eq!(r.send("GET", &other, &[], b"").status, 404);

    // Writes need credentials; the challenge points at the token endpoint.
    let mut anonymous = agent()
        .post(&r.server.url("/v2/docker/app/blobs/uploads/"))
        .send_empty()
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Bearer realm=") && challenge.contains("/v2/token"),
        "{challenge}"
    );
    let body = anonymous.body_mut().read_to_string().unwrap();
    assert!(body.contains("UNAUTHORIZED"), "{body}");
}

#[test]
fn disconnect_mid_upload_then_resume() {
    let r = registry();
    let before = r.blob_count();
    let whole: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let location = r.start("app");
    // Promise a megabyte, send 300 kB, hang up.
    let mut stream = TcpStream::connect(&r.server.addr).unwrap();
    write!(
        stream,
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
        r.auth,
        whole.len()
    )
    .unwrap();
    stream.write_all(&whole[..300_000]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(stream);

    // The session keeps exactly what arrived; no blob exists.
    let deadline = Instant::now() + Duration::from_secs(10);
    let received = loop {
        let reply = r.send("GET", &location, &[], b"");
        if reply.status == 204
            && let Some(end) = reply.header("range").and_then(|r| r.strip_prefix("0-"))
        {
            let end: u64 = end.parse().unwrap();
            if end > 0 {
                break end + 1;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the session never reported its bytes"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(received > 0 && received <= 300_000, "{received}");
    assert_eq!(r.blob_count(), before);
    let reply = r.send(
        "GET",
        &format!("/v2/docker/app/blobs/{}", digest_of(&whole)),
        &[],
        b"",
    );
    assert_eq!(reply.status, 404);

    // Resume from where the server says, finish, and read back the same bytes.
    let start = received as usize;
    let range = format!("{start}-{}", whole.len() - 1);
    let reply = r.send(
        "PATCH",
        &location,
        &[("content-range", range.as_str())],
        &whole[start..],
    );
    assert_eq!(
        reply.status,
        202,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let reply = r.send(
        "PUT",
        &format!("{location}?digest={}", digest_of(&whole)),
        &[],
        b"",
    );
    assert_eq!(reply.status, 201);
    let reply = r.send(
        "GET",
        &format!("/v2/docker/app/blobs/{}", digest_of(&whole)),
        &[],
        b"",
    );
    assert_eq!(reply.body, whole);
}

/// Pushes a config blob and a manifest naming it; returns the manifest's digest.
fn push_manifest(r: &Registry, image: &str, tag: &str, annotation: &str) -> String {
    let config = format!(r#"{{"a":"{annotation}"}}"#);
    let location = r.start(image);
    let reply = r.send(
        "PUT",
        &format!("{location}?digest={}", digest_of(config.as_bytes())),
        &[],
        config.as_bytes(),
    );
    assert_eq!(reply.status, 201);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[]}}"#,
        digest_of(config.as_bytes()),
        config.len()
    );
    let reply = r.send(
        "PUT",
        &format!("/v2/docker/{image}/manifests/{tag}"),
        &[("content-type", OCI_MANIFEST)],
        manifest.as_bytes(),
    );
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    digest_of(manifest.as_bytes())
}

fn json(reply: &Reply) -> serde_json::Value {
    serde_json::from_slice(&reply.body).unwrap()
}

#[test]
fn tags_and_catalog_page_with_links() {
    let r = registry();
    for (image, tag) in [("a", "1"), ("a", "2"), ("a", "3"), ("b/c", "x"), ("d", "y")] {
        push_manifest(&r, image, tag, &format!("{image}{tag}"));
    }
    // Tags: pages of two, each pointing at the next with a Link header.
    let first = r.send("GET", "/v2/docker/a/tags/list?n=2", &[], b"");
    assert_eq!(json(&first)["tags"], serde_json::json!(["1", "2"]));
    let link = first
        .header("link")
        .expect("a Link to the next page")
        .to_string();
    assert_eq!(link, r#"</v2/docker/a/tags/list?n=2&last=2>; rel="next""#);
    let second = r.send("GET", "/v2/docker/a/tags/list?n=2&last=2", &[], b"");
    assert_eq!(json(&second)["tags"], serde_json::json!(["3"]));
    assert!(second.header("link").is_none());
    let unknown = r.send("GET", "/v2/docker/nothing/tags/list", &[], b"");
    assert_eq!(
        (unknown.status, unknown.code.as_str()),
        (404, "NAME_UNKNOWN")
    );

    // The catalog: every image of every docker repository, paged the same way.
    let page = r.send("GET", "/v2/_catalog?n=2", &[], b"");
    assert_eq!(
        json(&page)["repositories"],
        serde_json::json!(["docker/a", "docker/b/c"])
    );
    assert_eq!(
        page.header("link"),
        Some(r#"</v2/_catalog?n=2&last=docker/b/c>; rel="next""#)
    );
    let rest = r.send("GET", "/v2/_catalog?n=2&last=docker/b/c", &[], b"");
    assert_eq!(json(&rest)["repositories"], serde_json::json!(["docker/d"]));
    assert!(rest.header("link").is_none());

    // Clients without the referrers API tag an index `sha256-<hex>` (the referrers tag schema): an ordinary tag.
    let subject = push_manifest(&r, "a", "4", "subject");
    let schema_tag = subject.replace(':', "-");
    push_manifest(&r, "a", &schema_tag, "fallback");
    let reply = r.send(
        "GET",
        &format!("/v2/docker/a/manifests/{schema_tag}"),
        &[],
        b"",
    );
    assert_eq!(reply.status, 200);
    let referrers = r.send(
        "GET",
        &format!("/v2/docker/a/referrers/{subject}"),
        &[],
        b"",
    );
    assert_eq!(
        referrers.header("content-type"),
        Some("application/vnd.oci.image.index.v1+json")
    );
    assert_eq!(json(&referrers)["manifests"], serde_json::json!([]));
}
