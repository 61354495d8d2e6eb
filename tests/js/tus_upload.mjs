// Upload one file to a fieldsync server with the stock tus-js-client, the way a phone that loses
// its signal does: the first chunk goes out with the creation request (creation-with-upload),
// then the upload is aborted; a second, fresh Upload resumes from the stored upload URL, asks the
// server for its offset and sends the rest.
//
//   node tus_upload.mjs ENDPOINT FILE SHA256 CONTENT_TYPE [HEADER=VALUE ...]
//
// Prints one JSON line per phase on stdout: {"phase": "interrupted", "url", "offset"} and
// {"phase": "completed", "url", "resumed_from", "media_sha256"}. Exits non-zero on any error.

import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { Upload } from 'tus-js-client'

const CHUNK_SIZE = 512 * 1024

const [endpoint, file, sha256, contentType, ...headerArgs] = process.argv.slice(2)
if (!contentType) {
  console.error('usage: node tus_upload.mjs ENDPOINT FILE SHA256 CONTENT_TYPE [HEADER=VALUE ...]')
  process.exit(2)
}
const headers = Object.fromEntries(
  headerArgs.map((arg) => {
    const at = arg.indexOf('=')
    return [arg.slice(0, at), arg.slice(at + 1)]
  }),
)
const data = readFileSync(file)
const options = {
  endpoint,
  headers,
  chunkSize: CHUNK_SIZE,
  metadata: { sha256, content_type: contentType, filename: basename(file) },
  retryDelays: [0, 250, 1000, 2000],
  storeFingerprintForResuming: false,
}

function uploadFirstChunkThenAbort() {
  return new Promise((resolve, reject) => {
    const upload = new Upload(data, {
      ...options,
      uploadDataDuringCreation: true,
      onChunkComplete(_chunkSize, bytesAccepted) {
        upload.abort().then(() => resolve({ url: upload.url, offset: bytesAccepted }), reject)
      },
      onSuccess() {
        reject(new Error('the upload finished before it could be interrupted'))
      },
      onError: reject,
    })
    upload.start()
  })
}

function resume(uploadUrl) {
  return new Promise((resolve, reject) => {
    let resumedFrom = null
    let mediaSha256 = null
    const upload = new Upload(data, {
      ...options,
      uploadUrl,
      onBeforeRequest(req) {
        if (req.getMethod() === 'PATCH' && resumedFrom === null) {
          resumedFrom = Number(req.getHeader('Upload-Offset'))
        }
      },
      onAfterResponse(_req, res) {
        mediaSha256 = res.getHeader('Fieldsync-Media-Sha256') || mediaSha256
      },
      onSuccess() {
        resolve({ url: upload.url, resumed_from: resumedFrom, media_sha256: mediaSha256 })
      },
      onError: reject,
    })
    upload.start()
  })
}

try {
  const interrupted = await uploadFirstChunkThenAbort()
  console.log(JSON.stringify({ phase: 'interrupted', ...interrupted }))
  const completed = await resume(interrupted.url)
  console.log(JSON.stringify({ phase: 'completed', ...completed }))
} catch (error) {
  console.error(`tus upload failed: ${error && error.stack ? error.stack : error}`)
  process.exit(1)
}
