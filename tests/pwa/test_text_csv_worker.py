"""The Python worker's text CSV handlers in Chromium: READ_TEXT_CSV gives a plain object (a null label
stays null), a refused file rejects with the core's sentence, WRITE_TEXT_CSV gives CSV bytes."""

from __future__ import annotations

CALL_WORKER = """async () => {
  const { MESSAGE, callWorker } = await import('/protocol.js');
  const worker = new Worker('/workers/python.js', { type: 'module' });
  const encode = (text) => new TextEncoder().encode(text);
  try {
    const read = await callWorker(worker, MESSAGE.READ_TEXT_CSV,
      { bytes: encode('ham\\tsee you\\nspam\\t"=WIN, now"\\nham\\t\\n'), name: 'sms.tsv', layout: 'csv' });
    const lines = await callWorker(worker, MESSAGE.READ_TEXT_CSV,
      { bytes: encode('first\\r\\n\\r\\nsecond'), name: 'cat.txt', layout: 'lines' });
    const refusals = [];
    for (const [bytes, name, options] of [[new Uint8Array(0), 'empty.csv', {}],
        [encode('a,x\\nb,y\\nc,z\\n'), 'three.csv', { maxClasses: 2 }]]) {
      try {
        await callWorker(worker, MESSAGE.READ_TEXT_CSV, { bytes, name, ...options });
        refusals.push(null);
      } catch (error) {
        refusals.push(error.message);
      }
    }
    const written = await callWorker(worker, MESSAGE.WRITE_TEXT_CSV, { rows: read.rows });
    const isBytes = written instanceof Uint8Array;
    return { read, lines, refusals, isBytes, written: new TextDecoder().decode(written) };
  } finally {
    worker.terminate();
  }
}"""


def test_text_csv_handlers_of_the_python_worker(serve, tmp_path, page):
    (tmp_path / "artifacts").mkdir()
    page.goto(serve(tmp_path / "artifacts").url + "/artifacts/")
    got = page.evaluate(CALL_WORKER)
    assert got["read"] == {
        "rows": [{"text": "see you", "label": "ham", "row": 1}, {"text": "=WIN, now", "label": "spam", "row": 2}],
        "skipped": [{"row": 3, "reason": "empty (nothing but spaces)"}],
        "notes": [
            "2 columns separated by tabs",
            "no header row",
            "column 1 is the label, column 2 the text (its values are shorter)",
        ],
        "encoding": "UTF-8",
        "delimiter": "\t",
        "header": False,
        "classes": {"ham": 1, "spam": 1},
    }
    assert [(r["text"], r["label"], r["row"]) for r in got["lines"]["rows"]] == [
        ("first", None, 1),
        ("second", None, 3),
    ]
    assert got["refusals"] == [
        "empty.csv is empty",
        "three.csv: 3 distinct labels in column 2; a project takes at most 2 classes — is column 2 really the label?",
    ]
    assert got["isBytes"] is True
    assert got["written"] == 'text,label\r\nsee you,ham\r\n"\'=WIN, now",spam\r\n'
