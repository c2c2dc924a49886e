#!/usr/bin/env node
// tok_node_bench.js - throughput of the npm gpt-3-encoder (the GPT-2 oracle)
// on the same text as bench_tokenizer, one encode() call per line (its
// encode() concatenates arrays per pre-token, so one call on 10 MB would be
// quadratic). Median of N runs; the module's own cache stays warm between
// runs, as it would in a long-lived process.
//
//   npm install --prefix tools --no-save --no-package-lock gpt-3-encoder
//   node bench/tok_node_bench.js [/tmp/tok_bench.txt] [runs=5]
const fs = require('fs');
const path = require('path');
const enc = require(require.resolve('gpt-3-encoder',
    { paths: [path.join(__dirname, '..', 'tools'), '/tmp/tok-npm'] }));

const file = process.argv[2] || '/tmp/tok_bench.txt';
const runs = parseInt(process.argv[3] || '5', 10);
const buf = fs.readFileSync(file);
const lines = buf.toString('utf8').split('\n');
const times = [];
let total = 0;
for (let r = 0; r < runs; r++) {
  total = 0;
  const a = process.hrtime.bigint();
  for (const l of lines) if (l.length) total += enc.encode(l).length;
  times.push(Number(process.hrtime.bigint() - a) / 1e9);
}
times.sort((x, y) => x - y);
const med = times[Math.floor(runs / 2)];
console.log(`gpt-3-encoder (node ${process.version}): ${(buf.length / 1e6).toFixed(2)} MB, ${runs} runs`);
console.log(`lines ${total} ids  median ${med.toFixed(3)} s  ${(buf.length / 1e6 / med).toFixed(1)} MB/s  ` +
            `(min ${times[0].toFixed(3)} s, max ${times[runs - 1].toFixed(3)} s)`);
