//! What the HTTP clients (supervisord, node probes, PoolTool) share: reading an answer's body
//! under a size limit, refusing it as soon as it is known to be larger, and the JSON GET of the
//! node probe and the reference source.

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than the limit (announced or streamed).
    TooLarge,
    /// The connection failed while reading.
    Transport(reqwest::Error),
}

/// Reads `response`'s body, at most `limit` bytes of it.
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let capacity = response
        .content_length()
        .map_or(8 * 1024, |length| length as usize);
    let mut body = Vec::with_capacity(capacity);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Why a JSON GET produced no body.
#[derive(Debug)]
pub enum GetError {
    /// The connection failed (before or while reading).
    Transport(reqwest::Error),
    /// An HTTP status other than 200.
    Status(u16),
    /// Larger than the limit.
    TooLarge,
}

/// `GET url` asking for JSON; the body of a 200 answer, at most `limit` bytes of it.
pub async fn get_json(
    client: &reqwest::Client,
    url: reqwest::Url,
    limit: usize,
) -> Result<Vec<u8>, GetError> {
    let response = client
        .get(url)
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(GetError::Transport)?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(GetError::Status(status.as_u16()));
    }
    read_limited(response, limit).await.map_err(|e| match e {
        BodyError::TooLarge => GetError::TooLarge,
        BodyError::Transport(e) => GetError::Transport(e),
    })
}
