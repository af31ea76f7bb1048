// Downloads of a text project: the model as one ONNX file (sentence encoder + classifier + softmax)
// with the tokenizer.json it reads, a Python snippet that reproduces the app's probabilities, and the
// dataset as CSV; texts from a CSV can be added here too. All of it runs in this browser.
import * as tejas from '../../tejas.js';
import { append, busy, codeBlock, filePicker, fileStem, h, plural, showError, toast } from './dom.js';
import { projectManifest } from './train.js';
import { modelCard, saveOnClick } from './export_card.js';

const py = (value) => JSON.stringify(value);

/**
 * Python that classifies texts with the exported ONNX file and tokenizer.json exactly as the app does:
 * truncation at the encoder's max_length (keeping [SEP]), batches of texts sorted by token count, padded
 * with pad_id to their longest text (the mask keeps padding out of the features: any batching gives the
 * same numbers within float noise). `text` is the manifest's text section.
 */
export function textSnippet(onnxFile, tokenizerFile, text) {
  return `# pip install onnxruntime tokenizers numpy
import json
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

session = ort.InferenceSession(${py(onnxFile)})
classes = json.loads(session.get_modelmeta().custom_metadata_map["class_names"])
tokenizer = Tokenizer.from_file(${py(tokenizerFile)})
tokenizer.enable_truncation(max_length=${text.max_length})  # keeps [CLS] and [SEP]
tokenizer.no_padding()
PAD_ID = ${text.pad_id}


def probabilities(texts, batch_size=32):
    """As the app: longest texts first, batch_size at a time, each batch padded to its longest text."""
    ids = [encoding.ids for encoding in tokenizer.encode_batch(texts)]
    order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
    out = np.zeros((len(texts), len(classes)), np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        longest = max(len(ids[i]) for i in rows)
        input_ids = np.full((len(rows), longest), PAD_ID, np.int64)
        attention_mask = np.zeros((len(rows), longest), np.int64)
        for k, i in enumerate(rows):
            input_ids[k, : len(ids[i])] = ids[i]
            attention_mask[k, : len(ids[i])] = 1
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        out[rows] = session.run(["probabilities"], feed)[0]
    return out


texts = sys.argv[1:] or ["Congratulations! You have won a prize. Call now to claim it."]
for text, p in zip(texts, probabilities(texts)):
    top = np.argsort(-p)[:3]
    print(" | ".join(f"{classes[i]} {p[i]:.6f}" for i in top), "<-", text[:60].replace("\\n", " "))
`;
}

export async function render(view, { project }) {
  const [status, manifest] = await Promise.all([tejas.modelStatus(project.id), projectManifest(project)]);
  const stem = fileStem(project.name);
  const model = status.model;
  const { section: modelSection, ready } = modelCard(project, status, manifest);
  if (ready) {
    const classNames = model.classes.map((c) => c.name);
    const tokenizerName = 'tokenizer.json';
    const onnxButton = h('button', { type: 'button', class: 'primary', id: 'download-onnx' }, 'Download ONNX');
    saveOnClick(onnxButton, 'Preparing…', () => tejas.exportOnnx(project.id), `${stem}.onnx`);
    const tokenizerButton = h('button', { type: 'button', class: 'secondary', id: 'download-tokenizer' }, 'Download tokenizer.json');
    saveOnClick(tokenizerButton, 'Preparing…', () => tejas.exportTokenizer(project.id), tokenizerName);
    append(modelSection,
      h('p', { class: 'muted' }, `${manifest?.architecture ?? 'The sentence encoder'} with your ${plural(classNames.length, 'class', 'classes')}: `
        + `${classNames.join(', ')}. The ONNX file takes token ids (input_ids, attention_mask) and gives each class's probability; `
        + 'tokenizer.json turns text into those ids. Both run without Tejas.'),
      h('div', { class: 'export-item' }, h('h3', {}, 'ONNX + tokenizer'),
        h('p', {}, 'For onnxruntime in Python, C#, C++, Java, JavaScript or on phones, with Hugging Face tokenizers.'),
        h('div', { class: 'row wrap' }, onnxButton, tokenizerButton),
        manifest?.text ? codeBlock('onnx-snippet', textSnippet(`${stem}.onnx`, tokenizerName, manifest.text),
          'Python code that classifies texts with the ONNX file and tokenizer.json') : null,
        manifest?.text ? h('small', { class: 'hint' }, `Save it as classify.py beside both files and run python classify.py "some text" "another text".`) : null));
  }

  const csvButton = h('button', { type: 'button', class: 'secondary', id: 'download-csv' }, 'Download dataset as CSV');
  saveOnClick(csvButton, 'Preparing…', () => tejas.exportDatasetCsv(project.id), `${stem}.csv`);
  const csvInput = filePicker('A CSV file of texts and labels', { accept: '.csv,.tsv,text/csv', id: 'import-csv' }, ([file]) => {
    busy(importButton, 'Importing…', async () => {
      try {
        const result = await tejas.addTextCsv(project.id, file);
        const added = result.added?.length ?? result.added;
        toast(`Added ${plural(added, 'text')} from ${file.name}${result.skipped.length
          ? `; skipped ${result.skipped.length} (row ${result.skipped[0].row}: ${result.skipped[0].reason})` : ''}.`);
      } catch (error) { showError(error, `${file.name}: `); }
    });
  });
  const importButton = h('button', { type: 'button', class: 'secondary', onclick: () => csvInput.click() }, 'Add texts from a CSV…');

  append(view,
    h('div', { class: 'title-row' }, h('h1', {}, 'Export')),
    modelSection,
    h('section', { class: 'card', 'aria-labelledby': 'data-export-title' },
      h('h2', { id: 'data-export-title' }, 'Data'),
      h('p', { class: 'muted' }, 'One row per text with its class: a header "text,label", quoted as RFC 4180 says, '
        + 'cells that a spreadsheet would run as a formula prefixed with \'. Pandas, spreadsheets and this app read it back.'),
      h('div', { class: 'row wrap' }, csvButton)),
    h('section', { class: 'card', 'aria-labelledby': 'import-title' },
      h('h2', { id: 'import-title' }, 'Import'),
      h('div', { class: 'row wrap' }, importButton, csvInput),
      h('small', { class: 'hint' }, 'A CSV adds its texts to this project, into classes named after its labels (made when missing). '
        + 'The Data screen shows a preview first.')));
  return null;
}
