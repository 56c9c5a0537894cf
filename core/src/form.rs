//! `Plan::Form`: a `multipart/form-data` body read as it arrives. Text fields are kept, bounded in all; each part
//! with a file name streams into the blob store like any other ingest, so a large upload is never held in memory.

use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use wharf_formats::{Form, FormFile, Problem};
use wharf_storage::Want;

use crate::server::App;

/// At most this many text fields (twine sends about 30, more with many classifiers).
const MAX_FIELDS: usize = 1_000;

pub async fn read(
    app: &App,
    req: &HttpRequest,
    payload: web::Payload,
    max_size: u64,
    max_files: usize,
    want: Want,
) -> Result<Form, Problem> {
    let is_multipart = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(Problem::new(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "the body must be multipart/form-data",
        ));
    }
    let max_text = app.config.server.max_document.bytes();
    let mut text_bytes = 0u64;
    let mut form = Form::default();
    let mut parts = actix_multipart::Multipart::new(req.headers(), payload);
    while let Some(part) = parts.next().await {
        let mut part = part.map_err(malformed)?;
        let disposition = part.content_disposition().cloned();
        let name = disposition
            .as_ref()
            .and_then(|d| d.get_name())
            .unwrap_or_default()
            .to_string();
        match disposition.as_ref().and_then(|d| d.get_filename()) {
            Some(filename) => {
                if form.files.len() >= max_files {
                    return Err(Problem::bad_request(format!(
                        "the form holds more than {max_files} files"
                    )));
                }
                let mut ingest = app.store.begin(want, max_size, None)?;
                while let Some(chunk) = part.next().await {
                    ingest.write(chunk.map_err(malformed)?).await?;
                }
                let blob = app.store.finish(ingest).await?;
                form.files.push(FormFile {
                    field: name,
                    filename: filename.to_string(),
                    blob,
                });
            }
            None => {
                if form.fields.len() >= MAX_FIELDS {
                    return Err(Problem::bad_request(format!(
                        "the form holds more than {MAX_FIELDS} fields"
                    )));
                }
                let mut value = Vec::new();
                while let Some(chunk) = part.next().await {
                    let chunk = chunk.map_err(malformed)?;
                    text_bytes += chunk.len() as u64;
                    if text_bytes > max_text {
                        return Err(wharf_storage::Error::TooLarge { limit: max_text }.into());
                    }
                    value.extend_from_slice(&chunk);
                }
                let value = String::from_utf8(value).map_err(|_| {
                    Problem::bad_request(format!("form field `{name}` is not UTF-8"))
                })?;
                form.fields.push((name, value));
            }
        }
    }
    Ok(form)
}

fn malformed(e: actix_multipart::MultipartError) -> Problem {
    Problem {
        detail: Some(e.to_string()),
        ..Problem::bad_request("the multipart body is malformed or ended early")
    }
}
