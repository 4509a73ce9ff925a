//! A minimal S3 client for the sealed payloads: path-style PUT, GET, DELETE and a bucket check,
//! signed with AWS Signature Version 4 (over our existing `reqwest`, `hmac` and `sha2`). Only what
//! the cluster backend needs; every request is signed, so an object store that checks signatures
//! (s3s-fs with keys, MinIO, Garage, AWS) accepts nothing from anyone without the keys.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Where the payloads live: `s3://BUCKET?endpoint=http://HOST:PORT[&region=R]` plus credentials
/// from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`).
#[derive(Clone)]
pub struct S3 {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    bucket: String,
    region: String,
    access_key: String,
    secret_key: String,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}?endpoint={}", self.bucket, self.endpoint)
    }
}

/// Why an S3 request failed, in words for central staff.
#[derive(Debug)]
pub struct S3Error(pub String);

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `(YYYYMMDD, YYYYMMDDTHHMMSSZ)` of Unix seconds `secs` (UTC).
pub(crate) fn amz_dates(secs: i64) -> (String, String) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let date = format!("{y:04}{m:02}{d:02}");
    let stamp = format!(
        "{date}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
    (date, stamp)
}

impl S3 {
    /// Parse `url` (`s3://bucket?endpoint=http://host:port[&region=r]`) and take the credentials
    /// from the environment.
    pub fn from_url(url: &str) -> Result<S3, S3Error> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            S3Error(format!(
                "{url:?} is not an object store address: s3://BUCKET?endpoint=http://HOST:PORT"
            ))
        })?;
        let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
        let bucket = bucket.trim_end_matches('/');
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(S3Error(format!("{bucket:?} is not an S3 bucket name")));
        }
        let mut endpoint = None;
        let mut region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|_| "us-east-1".into());
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "endpoint" => endpoint = Some(v.trim_end_matches('/').to_string()),
                "region" => region = v.into_owned(),
                other => return Err(S3Error(format!("unknown option {other:?} in {url:?}"))),
            }
        }
        let endpoint = endpoint.ok_or_else(|| {
            S3Error(format!(
                "{url:?} names no endpoint: s3://{bucket}?endpoint=http://HOST:PORT"
            ))
        })?;
        let host = endpoint
            .strip_prefix("http://")
            .ok_or_else(|| {
                S3Error(format!(
                    "object store endpoint {endpoint:?}: only http:// on this host (loopback) or behind a TLS-terminating proxy on it is supported"
                ))
            })?
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let hostname = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        if !tasjil_sync::tls::is_loopback_host(hostname) {
            return Err(S3Error(format!(
                "object store endpoint {endpoint:?}: plain HTTP is allowed on loopback only"
            )));
        }
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    S3Error(format!(
                        "{name} is not set: the object store's credentials come from the environment"
                    ))
                })
        };
        let access_key = var("AWS_ACCESS_KEY_ID")?;
        let secret_key = var("AWS_SECRET_ACCESS_KEY")?;
        // reqwest wants a process-wide rustls provider even for plain HTTP; ring is ours.
        let _ = tasjil_sync::tls::provider()
            .as_ref()
            .clone()
            .install_default();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| S3Error(format!("cannot set up HTTP: {e}")))?;
        Ok(S3 {
            http,
            endpoint,
            host,
            bucket: bucket.to_string(),
            region,
            access_key,
            secret_key,
        })
    }

    /// `s3://bucket/key`, for messages.
    pub fn describe(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn signed(&self, method: reqwest::Method, key: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
        let path = if key.is_empty() {
            format!("/{}", self.bucket)
        } else {
            format!("/{}/{key}", self.bucket)
        };
        let payload_hash = hex_sha256(&body);
        let (date, stamp) = amz_dates(crate::now_ms() / 1000);
        let canonical = format!(
            "{method}\n{path}\n\nhost:{}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{stamp}\n\nhost;x-amz-content-sha256;x-amz-date\n{payload_hash}",
            self.host
        );
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex_sha256(canonical.as_bytes())
        );
        let mut k = hmac(
            format!("AWS4{}", self.secret_key).as_bytes(),
            date.as_bytes(),
        );
        for part in [self.region.as_str(), "s3", "aws4_request"] {
            k = hmac(&k, part.as_bytes());
        }
        let signature = hex::encode(hmac(&k, to_sign.as_bytes()));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}",
            self.access_key
        );
        self.http
            .request(method, format!("{}{path}", self.endpoint))
            .header("x-amz-content-sha256", payload_hash)
            .header("x-amz-date", stamp)
            .header("authorization", auth)
            .body(body)
    }

    async fn send(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, S3Error> {
        req.send()
            .await
            .map_err(|e| S3Error(format!("object store {}: {what}: {e}", self.endpoint)))
    }

    async fn fail(&self, what: &str, resp: reqwest::Response) -> S3Error {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let code = body
            .split("<Code>")
            .nth(1)
            .and_then(|r| r.split("</Code>").next())
            .unwrap_or("");
        S3Error(format!(
            "object store {}: {what}: HTTP {status} {code}",
            self.endpoint
        ))
    }

    /// Store `bytes` under `key`; returns once the store answered success.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), S3Error> {
        let what = format!("put {}", self.describe(key));
        let resp = self
            .send(&what, self.signed(reqwest::Method::PUT, key, bytes))
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.fail(&what, resp).await)
        }
    }

    /// The object at `key`, `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, S3Error> {
        let what = format!("get {}", self.describe(key));
        let resp = self
            .send(&what, self.signed(reqwest::Method::GET, key, Vec::new()))
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.fail(&what, resp).await);
        }
        resp.bytes()
            .await
            .map(|b| Some(b.to_vec()))
            .map_err(|e| S3Error(format!("object store {}: {what}: {e}", self.endpoint)))
    }

    /// Remove the object at `key` (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        let what = format!("delete {}", self.describe(key));
        let resp = self
            .send(&what, self.signed(reqwest::Method::DELETE, key, Vec::new()))
            .await?;
        if resp.status().is_success() || resp.status() == reqwest::StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(self.fail(&what, resp).await)
        }
    }

    /// Whether the bucket exists and the credentials are accepted.
    pub async fn check_bucket(&self) -> Result<(), S3Error> {
        let what = format!("bucket {}", self.bucket);
        let resp = self
            .send(&what, self.signed(reqwest::Method::HEAD, "", Vec::new()))
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.fail(&what, resp).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::amz_dates;

    #[test]
    fn dates_in_utc() {
        assert_eq!(amz_dates(0), ("19700101".into(), "19700101T000000Z".into()));
        // 2026-12-05T01:52:27Z
        assert_eq!(
            amz_dates(1_796_435_547),
            ("20261205".into(), "20261205T015227Z".into())
        );
        // 2000-02-29T23:59:59Z, a leap day.
        assert_eq!(amz_dates(951_868_799).1, "20000229T235959Z");
    }
}
