// Prediction: an image from a file, the clipboard, the camera (live, continuously) or a drawing → top-k
// classes with confidence. "Wrong?" puts the image into the right class (always trained on) and can
// retrain at once, then predicts the same image again. "Many images" (#/p/<id>/predict/many) is
// predict_many.js; "Live stream" (#/p/<id>/predict/stream, on the server) is predict_stream.js; a text
// project's screen is predict_text.js.
import * as tejas from '../../tejas.js';
import * as manyImages from './predict_many.js';
import * as liveStream from './predict_stream.js';
import * as predictText from './predict_text.js';
import { createDrawing } from './draw.js';
import { createWebcam } from './webcam.js';
import { append, filePicker, h, panelToggle, predictionResult, projectUrl, showError, toast } from './dom.js';
import { artifactsChangedNotice, retrainThen, trainingRun } from './train.js';

/** The mode the address asks for: 'one', 'many' (#/p/<id>/predict/many) or 'stream' (…/predict/stream). */
function modeOf() {
  const mode = location.hash.replace(/^#\/?/, '').split('/')[3];
  return ['many', 'stream'].includes(mode) ? mode : 'one';
}

function modeSwitch(project, mode) {
  const link = (label, href, current) => h('a', { href, 'aria-current': current ? 'page' : null }, label);
  const base = projectUrl(project.id, 'predict');
  return h('nav', { class: 'mode-switch', 'aria-label': 'Prediction mode' },
    link('One image', base, mode === 'one'),
    link('Many images', `${base}/many`, mode === 'many'),
    link('Live stream', `${base}/stream`, mode === 'stream'));
}

export async function render(view, { project }) {
  const status = await tejas.modelStatus(project.id);
  const text = project.kind === 'text';
  const mode = text ? 'one' : modeOf(); // "Many images" and "Live stream" are for images
  append(view, h('div', { class: 'title-row' }, h('h1', {}, 'Predict'), text ? null : modeSwitch(project, mode)));
  if (!status.model) {
    append(view, h('section', { class: 'card' }, h('p', {}, `Train a model first, then try it on new ${text ? 'texts' : 'images'} here.`),
      h('a', { class: 'button primary', href: projectUrl(project.id, 'train') }, 'Go to Train')));
    return null;
  }
  if (status.artifactsChanged) {
    append(view, h('section', { class: 'card' }, artifactsChangedNotice(project, status)));
    return null;
  }
  if (text) return predictText.render(view, { project, status });
  if (mode === 'many') return manyImages.render(view, { project, status });
  if (mode === 'stream') return liveStream.render(view, { project, status });
  let current = null; // {blob, name, url}
  let live = false;
  const preview = h('img', { class: 'preview', alt: '', hidden: true });
  const retrainStatus = h('p', { id: 'retrain-status', role: 'status', 'aria-live': 'polite' });
  const topK = Math.min(5, status.model.classes.length);

  const predictBlob = async (blob, name) => {
    try {
      const top = await tejas.predict(project.id, blob, { topK });
      if (current?.url && current.blob !== blob) URL.revokeObjectURL(current.url);
      current = { blob, name, url: current?.blob === blob ? current.url : URL.createObjectURL(blob) };
      preview.src = current.url;
      preview.alt = `The image predicted: ${name}`;
      preview.hidden = false;
      result.show(top);
      view.dataset.predicted = top[0].name;
    } catch (error) {
      showError(error, 'Prediction failed: ');
    }
  };

  const correct = async (classId, retrain) => {
    const { blob, name } = current;
    const className = status.model.classes.find((c) => c.id === classId)?.name;
    const extension = blob.type === 'image/jpeg' ? 'jpg' : 'png';
    const file = new File([blob], /\.\w+$/.test(name) ? name : `${name}.${extension}`, { type: blob.type });
    const { moved } = await tejas.addCorrection(project.id, classId, file);
    toast(moved ? `This image was already in the dataset; it is now in "${className}".` : `Added to "${className}".`);
    if (retrain) runRetrain();
  };
  const result = predictionResult(status.model.classes, 'image', correct);

  const runRetrain = () => retrainThen(project, status, retrainStatus, view, async () => {
    if (current) await predictBlob(current.blob, current.name);
  });

  // Sources
  const fileInput = filePicker('An image to predict', { accept: 'image/*', id: 'predict-file' }, ([file]) => {
    stopLive();
    predictBlob(file, file.name);
  });
  const webcam = createWebcam();
  const liveButton = h('button', { type: 'button', class: 'secondary', id: 'live', 'aria-pressed': 'false' }, 'Live prediction');
  const stopLive = () => { live = false; liveButton.setAttribute('aria-pressed', 'false'); liveButton.textContent = 'Live prediction'; };
  liveButton.addEventListener('click', async () => {
    if (live) { stopLive(); return; }
    if (!webcam.started()) { showError('Turn the camera on first.'); return; }
    live = true;
    liveButton.setAttribute('aria-pressed', 'true');
    liveButton.textContent = 'Stop live prediction';
    let frames = 0;
    while (live && document.body.contains(liveButton)) {
      const blob = await webcam.frame();
      if (!blob) break;
      await predictBlob(blob, `camera frame ${new Date().toLocaleTimeString()}`);
      view.dataset.liveFrames = String(++frames);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    stopLive();
  });
  const drawing = createDrawing({ action: 'Predict drawing', onDrawing: (blob) => { stopLive(); predictBlob(blob, `drawing ${new Date().toLocaleTimeString()}`); } });
  const panels = {
    camera: h('div', { class: 'panel', id: 'predict-camera', hidden: true }, webcam.element, h('div', { class: 'row' }, liveButton)),
    draw: h('div', { class: 'panel', id: 'predict-draw', hidden: true }, drawing.element),
  };
  const onPaste = (event) => {
    const file = [...(event.clipboardData?.files ?? [])].find((f) => f.type.startsWith('image/'));
    if (!file) return;
    event.preventDefault();
    stopLive();
    predictBlob(file, file.name && file.name !== 'image.png' ? file.name : `pasted image ${new Date().toLocaleTimeString()}`);
  };
  document.addEventListener('paste', onPaste);

  append(view, 
    status.stale ? h('p', { class: 'warning' }, 'The data changed since this model was trained. ',
      h('a', { href: projectUrl(project.id, 'train') }, 'Train again'), ' to include it.') : null,
    h('div', { class: 'predict-layout' },
      h('section', { class: 'card', 'aria-labelledby': 'source-title' },
        h('h2', { id: 'source-title' }, 'Image'),
        h('div', { class: 'row wrap' },
          h('button', { type: 'button', class: 'primary', onclick: () => fileInput.click() }, 'Choose image…'), fileInput,
          panelToggle('Camera', panels.camera, { onClose: () => { stopLive(); webcam.stop(); } }), panelToggle('Draw', panels.draw)),
        h('small', { class: 'hint' }, 'Or paste an image (Ctrl+V).'),
        panels.camera, panels.draw),
      h('section', { class: 'card result', 'aria-labelledby': 'result-title' },
        h('h2', { id: 'result-title' }, 'Prediction'), preview,
        result.bars, result.correction, retrainStatus)));
  if (trainingRun(project.id)?.status === 'running') retrainStatus.textContent = 'A training run is in progress; predictions use the previous model until it finishes.';
  return () => {
    live = false;
    webcam.stop();
    document.removeEventListener('paste', onPaste);
    if (current?.url) URL.revokeObjectURL(current.url);
  };
}
