// The `openai` npm client against `clm serve` (run by tests/test_serve.cpp):
//   node openai_client.cjs BASE_URL MODEL     exits non-zero on the first failed check.
const OpenAI = require("openai");
const assert = require("assert");

async function main() {
  const [baseURL, model] = process.argv.slice(2);
  const client = new OpenAI({ baseURL, apiKey: "none", maxRetries: 0 });

  const models = await client.models.list();
  assert.ok(models.data.some((m) => m.id === model), "models.list names the served model");

  const chat = await client.chat.completions.create({
    model, messages: [{ role: "user", content: "Tell me a story" }], max_tokens: 8, temperature: 0,
  });
  assert.strictEqual(chat.choices[0].message.role, "assistant");
  assert.strictEqual(typeof chat.choices[0].message.content, "string");
  assert.ok(chat.usage.completion_tokens <= 8);

  const stream = await client.chat.completions.create({
    model, messages: [{ role: "user", content: "Tell me a story" }], max_tokens: 8, temperature: 0, stream: true,
  });
  let streamed = "", finish = null, chunks = 0;
  for await (const chunk of stream) {
    streamed += chunk.choices[0].delta.content ?? "";
    finish = chunk.choices[0].finish_reason ?? finish;
    chunks++;
  }
  assert.strictEqual(streamed, chat.choices[0].message.content, "streamed text equals the one-shot reply");
  assert.ok(finish === "length" || finish === "stop");
  assert.ok(chunks >= 2);

  const lp = await client.chat.completions.create({
    model, messages: [{ role: "user", content: "hi" }], max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const content = lp.choices[0].logprobs.content;
  assert.ok(content.length >= 1);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.strictEqual(t.top_logprobs.length, 3);
    assert.ok(t.top_logprobs[0].logprob >= t.logprob - 1e-9, "greedy token is the most likely");
  }

  const scored = await client.completions.create({ model, prompt: "the cat sat", max_tokens: 0, echo: true, logprobs: 1 });
  const tl = scored.choices[0].logprobs.token_logprobs;
  assert.strictEqual(tl[0], null);
  assert.ok(tl.slice(1).every((x) => x <= 0));

  let refused = false;
  try {
    await client.completions.create({ model: "no-such-model", prompt: "x", max_tokens: 1 });
  } catch (e) {
    refused = e.status === 404;
  }
  assert.ok(refused, "a wrong model name is a 404");
  console.log("openai client: all checks passed");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
