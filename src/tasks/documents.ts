/**
 * A token store's documents as the task builders see them: text, domain, code language, and the
 * units (sentences or lines) each is cut into.
 */
import type { TokenStore } from '../data/token-store.js';
import { codeUnits, proseUnits, type Unit } from './split.js';

export type CodeLanguage = 'go' | 'python';

export interface TaskDocument {
  /** Index in the store. */
  index: number;
  /** The `id` field, or `#<index>` when the document has none. */
  id: string;
  domain: string | undefined;
  language: CodeLanguage | undefined;
  text: string;
  /** Lines for code, sentences for prose. */
  units: Unit[];
}

const LANGUAGES: Record<string, CodeLanguage> = { go: 'go', golang: 'go', python: 'python', py: 'python' };

/**
 * A Go or Python file, by the first of: a `language` field; a domain `code_go`/`code_python` (the
 * shared corpus's marking); an id (or `path`) ending in `.go`/`.py`.
 */
export function codeLanguage(meta: Record<string, unknown>): CodeLanguage | undefined {
  if (typeof meta.language === 'string') return LANGUAGES[meta.language.toLowerCase()];
  const domain = typeof meta.domain === 'string' ? /^code[_-](\w+)$/i.exec(meta.domain)?.[1] : undefined;
  if (domain) return LANGUAGES[domain.toLowerCase()];
  for (const field of [meta.id, meta.path]) {
    const ext = typeof field === 'string' ? /\.(go|py)$/.exec(field)?.[1] : undefined;
    if (ext) return LANGUAGES[ext];
  }
  return undefined;
}

export function readDocuments(store: TokenStore): TaskDocument[] {
  const meta = store.metadata();
  const texts = store.texts(0, store.documentCount);
  return texts.map((text, index) => {
    const m = meta[index] ?? {};
    const language = codeLanguage(m);
    return {
      index,
      id: typeof m.id === 'string' ? m.id : `#${index}`,
      domain: typeof m.domain === 'string' ? m.domain : undefined,
      language,
      text,
      units: language ? codeUnits(text) : proseUnits(text),
    };
  });
}
