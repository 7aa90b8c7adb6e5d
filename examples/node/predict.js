#!/usr/bin/env node
// Sentiment of reviews with an rnncli text-input model, from Node.js: the ONNX file holds
// the tokenizer, vocabulary, padding and label, so this script only feeds it strings.
//
//   rnncli export onnx --model artifacts/ --text-input      # -> artifacts/model.text.onnx
//   node predict.js --model ../../artifacts/model.text.onnx "a wonderful film" "dull"
//
// One JSON line per review: {"text", "label", "probability", "known_words"}, as
// `rnncli predict --format jsonl` prints them.
'use strict';

const ort = require('onnxruntime-node');

const USAGE = 'usage: node predict.js [--model FILE.text.onnx] REVIEW [REVIEW ...]';

function parseArgs(argv) {
  let model = process.env.RNNCLI_TEXT_MODEL || 'artifacts/model.text.onnx';
  const reviews = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--model') {
      model = argv[++i];
    } else if (argv[i].startsWith('--model=')) {
      model = argv[i].slice('--model='.length);
    } else if (argv[i] === '--') {
      reviews.push(...argv.slice(i + 1));
      break;
    } else {
      reviews.push(argv[i]);
    }
  }
  if (!model || reviews.length === 0) {
    throw new UsageError(USAGE);
  }
  return { model, reviews };
}

class UsageError extends Error {}

async function main() {
  const { model, reviews } = parseArgs(process.argv.slice(2));
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
  const out = await session.run({ text: new ort.Tensor('string', reviews, [reviews.length]) });
  reviews.forEach((text, i) => {
    const row = {
      text,
      label: out.label.data[i],
      probability: Math.round(out.probability.data[i] * 1e6) / 1e6,
      known_words: Number(out.known_words.data[i]),
    };
    process.stdout.write(JSON.stringify(row) + '\n');
  });
}

main().catch((err) => {
  process.stderr.write(`Error: ${err.message}\n`);
  process.exit(err instanceof UsageError ? 2 : 1);
});
