// Prediction for a text project: type or paste a text → top-k classes with probabilities. "Wrong?" puts
// the text into the right class as a correction (always trained on) and can retrain at once, then
// predicts the same text again.
import * as tejas from '../../tejas.js';
import { MAX_TEXT_UNITS, isBlankText } from '../text/rules.js';
import { append, h, predictionResult, projectUrl, showError, toast } from './dom.js';
import { retrainThen, trainingRun } from './train.js';

export async function render(view, { project, status }) {
  let current = null; // the text last predicted
  const { model } = status;
  const topK = Math.min(5, model.classes.length);
  const input = h('textarea', { id: 'predict-text', rows: 5, maxlength: MAX_TEXT_UNITS, class: 'text-input', required: true,
    placeholder: 'e.g. Congratulations! You have won a prize. Call now to claim it.', 'aria-describedby': 'predict-text-hint' });
  const predictedText = h('blockquote', { class: 'predicted-text', id: 'predicted-text', hidden: true });
  const retrainStatus = h('p', { id: 'retrain-status', role: 'status', 'aria-live': 'polite' });

  const predict = async (text) => {
    try {
      const top = await tejas.predictText(project.id, text, { topK });
      current = text;
      predictedText.textContent = text;
      predictedText.hidden = false;
      result.show(top);
      view.dataset.predicted = top[0].name;
    } catch (error) {
      showError(error, 'Prediction failed: ');
    }
  };

  const correct = async (classId, retrain) => {
    const className = model.classes.find((c) => c.id === classId)?.name;
    const { moved } = await tejas.addTextCorrection(project.id, classId, current);
    toast(moved ? `This text was already in the dataset; it is now in "${className}".` : `Added to "${className}".`);
    if (retrain) retrainThen(project, status, retrainStatus, view, () => predict(current));
  };
  const result = predictionResult(model.classes, 'text', correct);

  const form = h('form', { class: 'stack', onsubmit: (event) => {
    event.preventDefault();
    if (isBlankText(input.value)) { showError('Type or paste a text to classify.'); return; }
    predict(input.value);
  } },
  h('label', { for: 'predict-text' }, 'Text to classify'), input,
  h('small', { class: 'hint', id: 'predict-text-hint' }, 'Type or paste a text; Ctrl+Enter predicts.'),
  h('div', { class: 'row wrap' }, h('button', { class: 'primary', id: 'predict-button' }, 'Predict')));
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });

  append(view,
    status.stale ? h('p', { class: 'warning' }, 'The data changed since this model was trained. ',
      h('a', { href: projectUrl(project.id, 'train') }, 'Train again'), ' to include it.') : null,
    h('div', { class: 'predict-layout' },
      h('section', { class: 'card', 'aria-labelledby': 'source-title' }, h('h2', { id: 'source-title' }, 'Text'), form),
      h('section', { class: 'card result', 'aria-labelledby': 'result-title' },
        h('h2', { id: 'result-title' }, 'Prediction'), predictedText, result.bars, result.correction, retrainStatus)));
  if (trainingRun(project.id)?.status === 'running') retrainStatus.textContent = 'A training run is in progress; predictions use the previous model until it finishes.';
  return null;
}
