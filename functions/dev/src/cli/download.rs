//! Saving a completed job's artifacts: `<job_id>.<ext>`, or `<job_id>_<n>.<ext>` when there are
//! several, each written whole to a `.part` file first and then renamed.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::client::{ApiClient, describe};
use super::error::CliError;
use super::job;
use super::output::rows;

/// Downloads every artifact of the completed job `view` into `dir` (made if missing); answers
/// the paths written, in the job's order.
pub async fn artifacts(client: &ApiClient, view: &Value, dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let artifacts = rows(view, "artifacts");
    if artifacts.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir).map_err(|error| CliError::local(format!("creating {}", dir.display()), error))?;
    let stem = safe_name(job::id(view));
    let mut saved = Vec::with_capacity(artifacts.len());
    for (index, artifact) in artifacts.iter().enumerate() {
        let url = artifact
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| CliError::BadAnswer {
                what: format!("job {stem}"),
                reason: format!("artifact {} has no url", index + 1),
            })?;
        let name = match artifacts.len() {
            1 => format!("{stem}.{}", extension(artifact, url)),
            _ => format!("{stem}_{}.{}", index + 1, extension(artifact, url)),
        };
        let path = dir.join(name);
        save(client, url, &path).await?;
        saved.push(path);
    }
    Ok(saved)
}

/// Streams `url` into `path`.
async fn save(client: &ApiClient, url: &str, path: &Path) -> Result<(), CliError> {
    let mut response = client.download(url).await?;
    let mut partial = path.as_os_str().to_owned();
    partial.push(".part");
    let partial = PathBuf::from(partial);
    let written = |error| CliError::local(format!("writing {}", partial.display()), error);
    let mut file = std::fs::File::create(&partial).map_err(written)?;
    loop {
        let chunk = response.chunk().await.map_err(|error| CliError::Unreachable {
            url: url.to_owned(),
            reason: describe(&error),
        });
        match chunk {
            Ok(Some(bytes)) => file.write_all(&bytes).map_err(written)?,
            Ok(None) => break,
            Err(error) => {
                let _ = std::fs::remove_file(&partial);
                return Err(error);
            }
        }
    }
    file.sync_all().map_err(written)?;
    std::fs::rename(&partial, path).map_err(|error| CliError::local(format!("writing {}", path.display()), error))
}

/// The artifact's file extension: its `format`, else the URL's, else `bin`; letters and digits
/// only.
fn extension(artifact: &Value, url: &str) -> String {
    let from_format = artifact.get("format").and_then(Value::as_str);
    let url_path = url.split(['?', '#']).next().unwrap_or_default();
    let from_url = url_path
        .rsplit('/')
        .next()
        .and_then(|file| file.rsplit_once('.'))
        .map(|(_, extension)| extension);
    [from_format, from_url]
        .into_iter()
        .flatten()
        .map(str::to_ascii_lowercase)
        .find(|extension| {
            !extension.is_empty() && extension.len() <= 10 && extension.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .unwrap_or_else(|| "bin".to_owned())
}

/// A job id fit for a file name: letters, digits, `_` and `-` only, never empty.
fn safe_name(id: &str) -> String {
    let name: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        .collect();
    if name.is_empty() { "job".to_owned() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_extension_comes_from_the_format_then_the_url() {
        let url = "http://h/blobs/artifacts/outputs/job_a/out.webp?expires=1&signature=x";
        assert_eq!(extension(&json!({"format": "PNG"}), url), "png");
        assert_eq!(extension(&json!({}), url), "webp");
        assert_eq!(extension(&json!({"format": "../x"}), "http://h/a"), "bin");
    }

    #[test]
    fn a_hostile_job_id_cannot_leave_the_output_folder() {
        assert_eq!(safe_name("../../etc/passwd"), "etcpasswd");
        assert_eq!(safe_name("job_abc123"), "job_abc123");
        assert_eq!(safe_name("/"), "job");
    }
}
