/**
 * `lory make-tasks` on the bundled held-out fixture: every item is checked against the stored text
 * (the gold really follows its context; distractors are what the task promises), the pool is kept
 * apart from the scored items, runs are byte-identical, and stores that cannot give a task say why.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../artifacts/index.js';
import { prepare } from '../data/prepare.js';
import { FIXTURE_HELDOUT, FIXTURE_TRAIN, llamaStyleTokenizer, tempDir, writeJsonl } from '../data/testing.js';
import { encodeMany, loadTokenizer } from '../data/tokenizer.js';
import { openTokenStore, type TokenStore } from '../data/token-store.js';
import { makeTasks } from './make-tasks.js';

interface Item {
  id: string;
  context: string;
  choices: string[];
  gold: number;
  fewshot?: boolean;
}

function readTask(dir: string, name: string): { header: { task: Record<string, unknown> }; items: Item[] } {
  const [header, ...items] = readFileSync(join(dir, `${name}.jsonl`), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
  return { header, items };
}

/** The store's documents by id, read through the store (not through the task code). */
function documentsById(store: TokenStore): Map<string, { index: number; text: string; domain: string }> {
  const meta = store.metadata();
  return new Map(meta.map((m, index) => [m.id as string, { index, text: store.text(index), domain: m.domain as string }]));
}

const docOf = (item: Item) => item.id.slice(0, item.id.lastIndexOf('#'));
/** What every choice starts with: the whitespace before the gold (for code, the newlines; the line keeps its indentation). */
const separatorOf = (item: Item) => (/\.(go|py)#\d+$/.test(item.id) ? /^\n*/ : /^\s*/).exec(item.choices[item.gold]!)![0];

const root = tempDir('make-tasks');
const train = join(root, 'train');
const heldout = join(root, 'heldout');

describe('lory make-tasks on the held-out fixture', () => {
  let store: TokenStore;
  let docs: ReturnType<typeof documentsById>;
  const out = join(root, 'tasks');
  before(async () => {
    await prepare({ inputs: [FIXTURE_TRAIN], out: train, vocabSize: 2048 });
    await prepare({ inputs: [FIXTURE_HELDOUT], out: heldout, tokenizer: train });
    await makeTasks({ store: heldout, out });
    store = openTokenStore(heldout);
    docs = documentsById(store);
  });

  it('writes the three tasks, a README and a manifest listing them', () => {
    assert.deepEqual(readdirSync(out).sort(), ['README.md', 'code-cloze.jsonl', 'continuation.jsonl', 'domain.jsonl', 'manifest.json']);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    assert.equal(manifest.kind, 'task-set');
    assert.deepEqual(Object.keys(manifest.files).sort(), ['README.md', 'code-cloze.jsonl', 'continuation.jsonl', 'domain.jsonl']);
    assert.deepEqual(manifest.stats.skipped, {});
    for (const name of ['continuation', 'domain', 'code-cloze']) {
      const { header, items } = readTask(out, name);
      assert.equal(header.task.name, name);
      assert.equal(header.task.kind, 'multiple_choice');
      assert.match(String(header.task.description), /lory make-tasks \(seed 0\)/);
      assert.equal(items.filter((i) => !i.fewshot).length, manifest.stats.tasks[name].items);
      assert.equal(items.filter((i) => i.fewshot).length, manifest.stats.tasks[name].fewshot);
      assert.equal(new Set(items.map((i) => i.id)).size, items.length, 'ids are unique');
    }
    const readme = readFileSync(join(out, 'README.md'), 'utf8');
    assert.match(readme, /\| continuation \| `continuation.jsonl` \| \d+ \| 16 \|/);
  });

  it('continuation: the gold is the stored text right after the context, starting and ending at unit boundaries', () => {
    const { items } = readTask(out, 'continuation');
    assert.ok(items.length >= 100, `${items.length} items`);
    for (const item of items) {
      const text = docs.get(docOf(item))!.text;
      const whole = item.context + item.choices[item.gold]!;
      const at = text.indexOf(whole);
      assert.ok(at >= 0, `${item.id}: context + gold is not in the document`);
      assert.ok(at === 0 || /\s/.test(text[at - 1]!), `${item.id}: context starts inside a unit`);
      assert.ok(at + whole.length === text.length || /\s/.test(text[at + whole.length]!), `${item.id}: gold stops inside a unit`);
      assert.ok(item.context.length <= 600);
    }
  });

  it('continuation: 3 distractors from other documents of the same domain, never the gold text', () => {
    const all = [...docs.values()];
    for (const item of readTask(out, 'continuation').items) {
      const source = docs.get(docOf(item))!;
      assert.equal(item.choices.length, 4);
      const gold = item.choices[item.gold]!;
      const sep = separatorOf(item);
      assert.equal(new Set(item.choices.map((c) => c.trim())).size, 4, `${item.id}: choices repeat`);
      item.choices.forEach((choice, i) => {
        assert.ok(choice.startsWith(sep), `${item.id}: every choice starts with the gold's separator`);
        if (i === item.gold) return;
        assert.notEqual(choice.trim(), gold.trim());
        const from = all.filter((d) => d.text.includes(choice.slice(sep.length)) && d.index !== source.index);
        assert.ok(from.length > 0, `${item.id}: distractor ${JSON.stringify(choice)} is in no other document`);
        assert.ok(from.some((d) => d.domain === source.domain), `${item.id}: distractor from ${from.map((d) => d.domain)} not ${source.domain}`);
      });
    }
  });

  it('continuation: a domain classifier over the choices does no better than chance', () => {
    // Naive Bayes over words, trained on the whole store: it tells domains apart, but every choice
    // of an item shares the gold's domain, so picking the choice most like the item's domain is a guess.
    const words = (t: string) => t.toLowerCase().match(/[a-z]+/g) ?? [];
    const counts = new Map<string, Map<string, number>>();
    const totals = new Map<string, number>();
    for (const d of docs.values()) {
      const c = counts.get(d.domain) ?? new Map<string, number>();
      counts.set(d.domain, c);
      for (const w of words(d.text)) c.set(w, (c.get(w) ?? 0) + 1);
      totals.set(d.domain, (totals.get(d.domain) ?? 0) + words(d.text).length);
    }
    const domains = [...counts.keys()];
    const logp = (t: string, dom: string) => words(t).reduce((s, w) => s + Math.log(((counts.get(dom)!.get(w) ?? 0) + 1) / (totals.get(dom)! + 50_000)), 0);
    const posterior = (t: string, dom: string) => {
      const l = domains.map((d) => logp(t, d));
      const m = Math.max(...l);
      return Math.exp(logp(t, dom) - m) / l.reduce((s, x) => s + Math.exp(x - m), 0);
    };
    let credit = 0;
    let classified = 0;
    const items = readTask(out, 'continuation').items.filter((i) => !i.fewshot);
    for (const item of items) {
      const domain = docs.get(docOf(item))!.domain;
      const scores = item.choices.map((c) => posterior(c, domain));
      const best = Math.max(...scores);
      const top = scores.flatMap((s, i) => (s >= best - 1e-12 ? [i] : []));
      credit += top.includes(item.gold) ? 1 / top.length : 0;
      classified += scores[item.gold]! > 0.5 ? 1 : 0;
    }
    assert.ok(classified / items.length > 0.7, `the classifier names the gold's domain in ${((100 * classified) / items.length).toFixed(1)}% of items`);
    assert.ok(credit / items.length < 0.4, `domain alone picks the gold in ${((100 * credit) / items.length).toFixed(1)}% of items`);
  });

  it('code-cloze: the next line of a Go or Python file against 3 other non-blank lines of the same file', () => {
    const { items } = readTask(out, 'code-cloze');
    assert.ok(items.length >= 30);
    for (const item of items) {
      assert.match(docOf(item), /\.(go|py)$/);
      const text = docs.get(docOf(item))!.text;
      assert.ok(text.includes(item.context + item.choices[item.gold]!), `${item.id}: context + gold is not in the file`);
      const lines = new Set(text.split('\n'));
      const sep = separatorOf(item);
      assert.match(sep, /^\n+$/);
      for (const choice of item.choices) {
        const line = choice.slice(sep.length);
        assert.ok(lines.has(line), `${item.id}: ${JSON.stringify(line)} is not a line of the file`);
        assert.ok(line.trim().length > 0);
      }
      assert.equal(new Set(item.choices.map((c) => c.trim())).size, 4, `${item.id}: a distractor repeats the gold or another`);
      item.choices.forEach((c, i) => assert.ok(i === item.gold || !item.context.includes(c.trim()), `${item.id}: the wrong choice ${JSON.stringify(c)} is already in the context`));
    }
  });

  it('domain: a snippet of the document and every domain as a choice, gold its domain', () => {
    const { header, items } = readTask(out, 'domain');
    const domains = [...new Set([...docs.values()].map((d) => d.domain))].sort();
    assert.equal(header.task.instruction, `Each text comes from one of these domains: ${domains.join(', ')}.`);
    const labels = new Set<number>();
    for (const item of items) {
      const m = /^Text: ([^]*)\nDomain:$/.exec(item.context);
      assert.ok(m, item.context);
      assert.ok(!m[1]!.includes('\n\n') && m[1]!.length <= 200);
      const doc = docs.get(docOf(item))!;
      let from = 0;
      for (const line of m[1]!.split('\n')) {
        from = doc.text.indexOf(line, from);
        assert.ok(from >= 0, `${item.id}: ${JSON.stringify(line)} is not in the document`);
      }
      assert.deepEqual(item.choices, domains.map((d) => ` ${d}`));
      assert.equal(item.choices[item.gold], ` ${doc.domain}`);
      if (!item.fewshot) labels.add(item.gold);
    }
    assert.equal(labels.size, domains.length, 'every domain is scored');
  });

  it('keeps the few-shot pool apart: no pool item shares a document with a scored item', () => {
    for (const name of ['continuation', 'domain', 'code-cloze']) {
      const { items } = readTask(out, name);
      const pool = new Set(items.filter((i) => i.fewshot).map(docOf));
      const scored = new Set(items.filter((i) => !i.fewshot).map(docOf));
      assert.equal(items.filter((i) => i.fewshot).length, 16, name);
      assert.deepEqual([...pool].filter((d) => scored.has(d)), [], name);
    }
  });

  it('gives byte-identical files on a fresh run, and others with another seed', async () => {
    const again = join(root, 'again');
    await makeTasks({ store: heldout, out: again });
    for (const f of ['continuation.jsonl', 'domain.jsonl', 'code-cloze.jsonl', 'README.md']) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(again, f))), f);
    const seed1 = join(root, 'seed1');
    await makeTasks({ store: heldout, out: seed1, seed: 1 });
    for (const f of ['continuation.jsonl', 'domain.jsonl', 'code-cloze.jsonl']) assert.ok(!readFileSync(join(out, f)).equals(readFileSync(join(seed1, f))), f);
  });

  it('--max-context-tokens fits each context and its longest choice into the tokens of the store tokenizer', async () => {
    const fitted = join(root, 'fitted');
    await makeTasks({ store: heldout, out: fitted, maxContextTokens: 100, items: 60 });
    const loaded = loadTokenizer(join(heldout, 'tokenizer.json'));
    let shortened = 0;
    for (const name of ['continuation', 'domain', 'code-cloze']) {
      const { items } = readTask(fitted, name);
      assert.ok(items.length >= 40, name);
      const counts = (await encodeMany(loaded, items.flatMap((i) => [i.context, ...i.choices]))).map((ids) => ids.length);
      let k = 0;
      for (const item of items) {
        const context = counts[k++]!;
        const longest = Math.max(...item.choices.map(() => counts[k++]!));
        assert.ok(context + longest <= 100, `${name} ${item.id}: ${context} + ${longest} tokens`);
      }
      const plain = new Map(readTask(out, name).items.map((i) => [i.id, i.context]));
      shortened += items.filter((i) => plain.has(i.id) && i.context.length < plain.get(i.id)!.length).length;
    }
    assert.ok(shortened > 10, `${shortened} contexts were shortened to fit`);
  });

  it('ships fixtures/tasks as the command in fixtures/README.md makes it', async () => {
    const made = join(root, 'fixture-again');
    await makeTasks({ store: heldout, out: made, items: 30, fewshot: 6, maxContextTokens: 128 });
    const shipped = join(PROJECT_ROOT, 'fixtures', 'tasks');
    assert.match(readFileSync(join(PROJECT_ROOT, 'fixtures', 'README.md'), 'utf8'), /make-tasks \S+ -o fixtures\/tasks --items 30 --fewshot 6 --max-context-tokens 128/);
    for (const f of ['continuation.jsonl', 'domain.jsonl', 'code-cloze.jsonl', 'README.md']) assert.ok(readFileSync(join(made, f)).equals(readFileSync(join(shipped, f))), f);
  });
});

describe('lory make-tasks on stores that cannot give every task', () => {
  const tokenizer = llamaStyleTokenizer(join(root, 'tokenizer.json'));
  const storeOf = async (name: string, docs: Array<Record<string, string>>) => {
    const dir = join(root, name);
    await prepare({ inputs: [writeJsonl(join(root, `${name}.jsonl`), docs)], out: dir, tokenizer });
    return dir;
  };
  const prose = (n: number, topic: string) => Array.from({ length: 6 }, (_, i) => `The ${topic} report number ${n} has line ${i} about matters.`).join(' ');

  it('refuses a store without domains: continuation distractors must share a domain', async () => {
    const store = await storeOf('plain', [{ text: prose(1, 'plain') }, { text: prose(2, 'plain') }]);
    await assert.rejects(makeTasks({ store, out: join(root, 'plain-tasks') }), { name: 'InputError', message: /plain: no document has a "domain" field; continuation distractors must come from documents of the same domain/ });
  });

  it('skips the domain task with one domain and code-cloze without code, and says why', async () => {
    const store = await storeOf('one-domain', [1, 2, 3].map((n) => ({ id: `news/${n}`, domain: 'news', text: prose(n, 'news') })));
    const r = await makeTasks({ store, out: join(root, 'one-domain-tasks') });
    assert.deepEqual(Object.keys(r.manifest.stats.tasks), ['continuation']);
    assert.deepEqual(r.manifest.stats.skipped, {
      domain: 'the store has 1 domain (news); classifying needs at least 2',
      'code-cloze': 'no Go or Python files (a `language` field go/python, a domain code_go/code_python, or an id ending in .go/.py)',
    });
    const readme = readFileSync(join(root, 'one-domain-tasks', 'README.md'), 'utf8');
    assert.match(readme, /- \*\*domain\*\*: the store has 1 domain \(news\); classifying needs at least 2\./);
    assert.deepEqual(readdirSync(join(root, 'one-domain-tasks')).sort(), ['README.md', 'continuation.jsonl', 'manifest.json']);
  });

  it('skips continuation when no domain has two documents, and fails when no task can be made', async () => {
    const store = await storeOf('singles', [{ domain: 'a', text: prose(1, 'alpha') }, { domain: 'b', text: prose(2, 'beta') }]);
    const r = await makeTasks({ store, out: join(root, 'singles-tasks') });
    assert.deepEqual(Object.keys(r.manifest.stats.tasks), ['domain']);
    assert.match(r.manifest.stats.skipped.continuation!, /no domain has two documents/);
    const lone = await storeOf('lone', [{ domain: 'a', text: prose(1, 'alpha') }]);
    await assert.rejects(makeTasks({ store: lone, out: join(root, 'lone-tasks') }), { name: 'InputError', message: /lone: no task could be made: continuation: .*; domain: the store has 1 domain \(a\).*; code-cloze: no Go or Python files/ });
  });
});
