#!/usr/bin/env node
// Sentiment of reviews with an rnncli text-input model, from Node.js: the ONNX file holds
// the tokenizer, vocabulary, padding and label, so this script only feeds it strings.
//
//   rnncli export onnx --model artifacts/ --text-input      # -> artifacts/model.text.onnx
//   node predict.js --model ../../artifacts/model.text.onnx "a wonderful film" "dull"
//   node predict.js < reviews.txt                            # one review per line
//
// One JSON line per review: {"line", "text", "label", "probability", "known_words"}, as
// `rnncli predict --format jsonl` prints them; a blank review gets label and probability
// null and known_words 0, as a blank line does in rnncli. A model of more than 2 labels
// gives the most probable label and its probability, and "probabilities" {label: p} of every
// label, as `rnncli predict --all-probabilities --format jsonl` does.
'use strict';

const fs = require('fs');
const path = require('path');

// The repository's artifacts/ folder, wherever the script is run from.
const DEFAULT_MODEL = path.resolve(__dirname, '..', '..', 'artifacts', 'model.text.onnx');
const BATCH = 256; // reviews per model call
const MAX_LINE_BYTES = 1 << 20; // rnncli predict's cap on one line of input

const USAGE = `usage: node predict.js [--model FILE.text.onnx] [REVIEW ...]

Prints one JSON line per review: line, text, label, probability, known_words
(and probabilities, every label's, for a model of more than 2 labels).
Reviews come from the arguments; without any (or with a lone -), from stdin, one per line.

options:
  --model FILE   a text-input model (rnncli export onnx --text-input);
                 default: $RNNCLI_TEXT_MODEL, else ${DEFAULT_MODEL}
  --             the arguments after it are reviews, even if they start with -
  -h, --help     show this help and exit
`;

class UsageError extends Error {}

function parseArgs(argv) {
  let model = process.env.RNNCLI_TEXT_MODEL || null;
  const reviews = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') {
      return { help: true };
    } else if (arg === '--model') {
      if (i + 1 >= argv.length) throw new UsageError('--model needs a file: --model FILE.text.onnx');
      model = argv[++i];
    } else if (arg.startsWith('--model=')) {
      model = arg.slice('--model='.length);
    } else if (arg === '--') {
      reviews.push(...argv.slice(i + 1));
      break;
    } else if (arg.startsWith('-') && arg !== '-') {
      throw new UsageError(`unknown option ${arg}: see --help (put reviews that start with - after --)`);
    } else {
      reviews.push(arg);
    }
  }
  if (reviews.includes('-') && reviews.length > 1) {
    throw new UsageError('`-` (read stdin) must be the only review: node predict.js - < reviews.txt');
  }
  return { help: false, model: model || DEFAULT_MODEL, modelGiven: Boolean(model), reviews };
}

// Python's str.strip(), which rnncli applies to every line it reads: JavaScript's trim()
// also strips U+FEFF, and not U+001C-U+001F or U+0085.
const PY_SPACE = '[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const PY_STRIP = new RegExp(`^${PY_SPACE}+|${PY_SPACE}+$`, 'g');
const pyStrip = (s) => s.replace(PY_STRIP, '');

// [line number, review] of each line of stdin, streamed: split on \n only, as Python does,
// each line decoded as strict UTF-8 and stripped.
async function* stdinLines() {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let pending = Buffer.alloc(0);
  let number = 0;
  const decode = (bytes) => {
    number += 1;
    if (bytes.length > MAX_LINE_BYTES) {
      throw new UsageError(`line ${number} of stdin is longer than ${MAX_LINE_BYTES} bytes: put one review per line`);
    }
    try {
      return [number, pyStrip(decoder.decode(bytes))];
    } catch (err) {
      throw new UsageError(`line ${number} of stdin is not UTF-8: convert it (e.g. iconv -t utf-8)`);
    }
  };
  for await (const chunk of process.stdin) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let start = 0;
    let end;
    while ((end = pending.indexOf(0x0a, start)) !== -1) {
      yield decode(pending.subarray(start, end));
      start = end + 1;
    }
    pending = pending.subarray(start);
    if (pending.length > MAX_LINE_BYTES) yield decode(pending);
  }
  if (pending.length) yield decode(pending);
}

async function* argumentLines(reviews) {
  for (let i = 0; i < reviews.length; i++) yield [i + 1, reviews[i]];
}

async function* batches(lines) {
  let batch = [];
  for await (const line of lines) {
    batch.push(line);
    if (batch.length === BATCH) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

async function openModel(model, given) {
  if (!fs.existsSync(model)) {
    const how = given ? 'check --model' : 'pass --model FILE.text.onnx (or set RNNCLI_TEXT_MODEL)';
    throw new Error(`No model at ${model}: ${how}; \`rnncli export onnx --text-input\` writes one.`);
  }
  const ort = require('onnxruntime-node');
  let session;
  try {
    session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  } catch (err) {
    throw new Error(`Cannot load ${model} (${String(err.message).split('\n')[0]}): ` +
                    'export it with `rnncli export onnx --text-input`.');
  }
  if (!session.inputNames.includes('text')) {
    throw new Error(`${model} takes ids, not text: export it with --text-input.`);
  }
  return { ort, session };
}

async function predict({ ort, session }, batch) {
  // A blank review is not given to the model: rnncli answers it with nulls.
  const texts = batch.filter(([, text]) => pyStrip(text) !== '').map(([, text]) => text);
  const out = texts.length
    ? await session.run({ text: new ort.Tensor('string', texts, [texts.length]) })
    : null;
  // A model of K > 2 labels gives [batch, K] probabilities and its label names ("labels").
  const manyLabels = session.outputNames.includes('labels');
  const names = manyLabels && out ? out.labels.data : null;
  const round = (p) => Math.round(p * 1e6) / 1e6;
  let k = 0;
  return batch.map(([line, text]) => {
    if (pyStrip(text) === '') {
      const blank = { line, text, label: null, probability: null, known_words: 0 };
      return manyLabels ? { ...blank, probabilities: null } : blank;
    }
    const i = k++;
    const known = Number(out.known_words.data[i]);
    if (!manyLabels) {
      return { line, text, label: out.label.data[i], probability: round(out.probability.data[i]),
               known_words: known };
    }
    const probabilities = {};
    names.forEach((name, j) => {
      probabilities[name] = round(out.probability.data[i * names.length + j]);
    });
    const label = out.label.data[i];
    return { line, text, label, probability: probabilities[label], known_words: known,
             probabilities };
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    process.stdout.write(USAGE);
    return;
  }
  const fromStdin = args.reviews.length === 0 || (args.reviews.length === 1 && args.reviews[0] === '-');
  if (fromStdin && args.reviews.length === 0 && process.stdin.isTTY) {
    throw new UsageError('nothing to predict: give reviews as arguments or pipe them on stdin, one per line (see --help)');
  }
  const model = await openModel(args.model, args.modelGiven);
  let rows = 0;
  for await (const batch of batches(fromStdin ? stdinLines() : argumentLines(args.reviews))) {
    const out = (await predict(model, batch)).map((row) => JSON.stringify(row) + '\n');
    rows += out.length;
    process.stdout.write(out.join(''));
  }
  if (rows === 0 && args.reviews.length === 0) {
    // As rnncli: an empty stdin with nothing else given is more likely a mistake.
    throw new UsageError('nothing to predict: stdin was empty (see --help)');
  }
}

main().catch((err) => {
  process.stderr.write(`Error: ${err.message}\n`);
  process.exit(err instanceof UsageError ? 2 : 1);
});
