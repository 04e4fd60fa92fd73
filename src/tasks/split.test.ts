import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { codeUnits, proseUnits, separatorBefore, type Unit } from './split.js';

const texts = (text: string, units: Unit[]) => units.map((u) => text.slice(u.start, u.end));

describe('cutting documents into sentences and lines', () => {
  it('cuts prose at newlines and after . ! ? before spaces and a capital, and nowhere else', () => {
    const text = 'Hello there. How are you? i am fine, e.g. here.\n  Next line!  Yes (Dr. Smith) said "no." Then 3.5 Ä.\n\nÉlan vital?Not cut';
    assert.deepEqual(texts(text, proseUnits(text)), ['Hello there.', 'How are you? i am fine, e.g. here.', 'Next line!', 'Yes (Dr.', 'Smith) said "no." Then 3.5 Ä.', 'Élan vital?Not cut']);
  });

  it('keeps code lines whole with their indentation, drops blank lines and trailing spaces', () => {
    const text = 'def f(x):\n\n    """Doc. Not a sentence cut."""   \n\treturn x\n\n\n';
    const units = codeUnits(text);
    assert.deepEqual(texts(text, units), ['def f(x):', '    """Doc. Not a sentence cut."""', '\treturn x']);
    assert.equal(separatorBefore(text, units, 1), '\n\n');
    assert.equal(separatorBefore(text, units, 2), '   \n');
  });

  it('units and the separators between them give back the text (whitespace only outside units)', () => {
    const text = '  Intro line.   Second one!\n    indented text here\n\nLast? Yes.  ';
    for (const units of [proseUnits(text), codeUnits(text)]) {
      let rebuilt = text.slice(0, units[0]!.start);
      units.forEach((u, i) => (rebuilt += (i > 0 ? separatorBefore(text, units, i) : '') + text.slice(u.start, u.end)));
      rebuilt += text.slice(units.at(-1)!.end);
      assert.equal(rebuilt, text);
      for (let i = 1; i < units.length; i++) assert.match(separatorBefore(text, units, i), /^\s+$/);
      for (const t of texts(text, units)) assert.match(t, /\S$/);
    }
  });

  it('has no units in blank text', () => {
    assert.deepEqual(proseUnits(' \n\t\n'), []);
    assert.deepEqual(codeUnits(''), []);
  });
});
