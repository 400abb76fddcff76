// Runs the official OpenAI client library, with its defaults, against embedding
// servers started by compat_test.go, and prints what it saw as JSON.
import OpenAI from 'openai';

const env = process.env;

// Records each HTTP exchange the library makes (the library itself is unchanged).
function recorder(log) {
  return async (url, init) => {
    const at = Date.now();
    const res = await fetch(url, init);
    log.push({ at, status: res.status, retryAfter: res.headers.get('retry-after'), body: init && init.body ? JSON.parse(init.body) : null });
    return res;
  };
}

async function occupy(base) {
  // A raw request that holds the server's only slot for a while.
  return fetch(base + '/embeddings', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: 'occupy' }) });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function retried(base, model) {
  const log = [];
  const client = new OpenAI({ baseURL: base, apiKey: 'unused', fetch: recorder(log) });
  const hold = occupy(base);
  await sleep(300);
  let ok = false, error = null, dims = 0;
  try {
    const res = await client.embeddings.create({ model, input: 'please retry me' });
    ok = true;
    dims = res.data[0].embedding.length;
  } catch (e) {
    error = String(e);
  }
  await hold;
  return { ok, error, dims, attempts: log.map(({ at, status, retryAfter }) => ({ at, status, retryAfter })) };
}

const out = {};
{
  const log = [];
  const client = new OpenAI({ baseURL: env.BUILTIN_URL, apiKey: 'unused', fetch: recorder(log) });
  const res = await client.embeddings.create({ model: env.BUILTIN_MODEL, input: ['the first text', 'a second, different text'] });
  const floats = await client.embeddings.create({ model: env.BUILTIN_MODEL, input: 'explicit floats', encoding_format: 'float' });
  out.vectors = res.data.map((d) => ({ index: d.index, embedding: Array.from(d.embedding) }));
  out.floatVector = Array.from(floats.data[0].embedding);
  out.model = res.model;
  out.usage = res.usage;
  out.defaultEncoding = log[0].body.encoding_format ?? null;
  const models = await client.models.list();
  out.models = models.data.map((m) => m.id);
  // The server's own field passes through the library untouched.
  out.spaces = models.data.map((m) => m.ragops ?? null);
  out.retrieved = (await client.models.retrieve(env.BUILTIN_MODEL)).ragops ?? null;
}
out.busy = await retried(env.BUSY_URL, env.UPSTREAM_MODEL);
{
  // An upstream out of quota: the library sees the upstream's own error.
  const log = [];
  const client = new OpenAI({ baseURL: env.QUOTA_URL, apiKey: 'unused', fetch: recorder(log) });
  out.quota = {};
  try {
    await client.embeddings.create({ model: env.UPSTREAM_MODEL, input: 'out of credit' });
  } catch (e) {
    out.quota = { status: e.status ?? 0, type: e.type ?? null, code: e.code ?? null, name: e.constructor.name };
  }
  out.quota.attempts = log.map(({ at, status, retryAfter }) => ({ at, status, retryAfter }));
}
out.queue = await retried(env.QUEUE_URL, env.UPSTREAM_MODEL);
{
  // A rate-limited upstream whose pause outlasts the request's deadline: 429
  // budget with Retry-After, which the library waits out and then succeeds.
  const log = [];
  const client = new OpenAI({ baseURL: env.BUDGET_URL, apiKey: 'unused', fetch: recorder(log) });
  let ok = false, error = null, dims = 0;
  try {
    const res = await client.embeddings.create({ model: env.UPSTREAM_MODEL, input: 'paced by the budget' });
    ok = true;
    dims = res.data[0].embedding.length;
  } catch (e) {
    error = String(e);
  }
  out.budget = { ok, error, dims, attempts: log.map(({ at, status, retryAfter }) => ({ at, status, retryAfter })) };
}
console.log(JSON.stringify(out));
