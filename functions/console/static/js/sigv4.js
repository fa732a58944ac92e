// AWS Signature Version 4 in the browser (WebCrypto HMAC-SHA256), for the operator routes
// (/v1/admin/…, API Gateway AWS_IAM, service execute-api). The credentials stay in memory.

const encoder = new TextEncoder();
const SERVICE = "execute-api";

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256Hex(text) {
  return hex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

async function hmac(key, text) {
  const raw = typeof key === "string" ? encoder.encode(key) : key;
  const cryptoKey = await crypto.subtle.importKey("raw", raw, {name: "HMAC", hash: "SHA-256"}, false, ["sign"]);
  return crypto.subtle.sign("HMAC", cryptoKey, encoder.encode(text));
}

function encodeSegment(segment) {
  return encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * The headers that sign a request: x-amz-date, authorization (and x-amz-security-token,
 * content-type when there are). `url` is a URL whose query is already in canonical form
 * (names sorted, RFC 3986-encoded) — it is sent exactly so.
 */
export async function signedHeaders({method, url, body = "", credentials, region, now = new Date()}) {
  const amzDate = now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const day = amzDate.slice(0, 8);
  const headers = {host: url.host, "x-amz-date": amzDate};
  if (credentials.sessionToken) headers["x-amz-security-token"] = credentials.sessionToken;
  if (body) headers["content-type"] = "application/json";
  const names = Object.keys(headers).sort();
  const canonicalUri = url.pathname.split("/").map(encodeSegment).join("/");
  const canonicalRequest = [
    method.toUpperCase(),
    canonicalUri,
    url.search.replace(/^\?/, ""),
    names.map((name) => `${name}:${String(headers[name]).trim().replace(/\s+/g, " ")}\n`).join(""),
    names.join(";"),
    await sha256Hex(body),
  ].join("\n");
  const scope = `${day}/${region}/${SERVICE}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, await sha256Hex(canonicalRequest)].join("\n");
  const dateKey = await hmac(`AWS4${credentials.secretAccessKey}`, day);
  const regionKey = await hmac(dateKey, region);
  const serviceKey = await hmac(regionKey, SERVICE);
  const signingKey = await hmac(serviceKey, "aws4_request");
  const signature = hex(await hmac(signingKey, stringToSign));
  const signed = {...headers};
  delete signed.host; // the browser sends it (and may not be told to)
  signed.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, `
    + `SignedHeaders=${names.join(";")}, Signature=${signature}`;
  return signed;
}
