// Downloads — the model as standalone ONNX or PyTorch weights (each with a Python snippet that loads
// it), the dataset as an ImageFolder zip, the whole project as one file — and imports of the last two.
// All of it runs in this browser. A text project's downloads are exports_text.js.
import * as tejas from '../../tejas.js';
import { append, busy, codeBlock, filePicker, fileStem, h, plural, projectUrl, showError, toast } from './dom.js';
import { modelCard, saveOnClick } from './export_card.js';
import * as textExports from './exports_text.js';

const py = (value) => JSON.stringify(value);

/** Python that loads the ONNX file and classifies one image, with this model's preprocessing. */
export function onnxSnippet(file, input) {
  const [height, width] = input.size;
  return `# pip install onnxruntime pillow numpy
import json
import numpy as np
import onnxruntime as ort
from PIL import Image

session = ort.InferenceSession(${py(file)})
classes = json.loads(session.get_modelmeta().custom_metadata_map["class_names"])

def preprocess(path):
    image = Image.open(path).convert("RGB")
    scale = ${input.resize.shorter_side} / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    left, top = round((image.width - ${width}) / 2), round((image.height - ${height}) / 2)
    image = image.crop((left, top, left + ${width}, top + ${height}))
    x = (np.asarray(image, np.float32) / 255 - ${py(input.mean)}) / ${py(input.std)}
    return x.transpose(2, 0, 1)[None].astype(np.float32)

probabilities = session.run(["probabilities"], {"image": preprocess("photo.jpg")})[0][0]
print(classes[int(probabilities.argmax())], float(probabilities.max()))
`;
}

/** Python that loads the .pt state dict into torchvision's model and classifies one image. */
export function pytorchSnippet(file, architecture, classNames, input) {
  return `# pip install torch torchvision pillow
import torch
import torchvision
from PIL import Image
from torchvision import transforms

classes = ${py(classNames)}
model = torchvision.models.${architecture}(num_classes=len(classes))
model.load_state_dict(torch.load(${py(file)}, weights_only=True))
model.eval()
preprocess = transforms.Compose([
    transforms.Resize(${input.resize.shorter_side}),
    transforms.CenterCrop(${py(input.size)}),
    transforms.ToTensor(),
    transforms.Normalize(${py(input.mean)}, ${py(input.std)}),
])
with torch.no_grad():
    probabilities = model(preprocess(Image.open("photo.jpg").convert("RGB"))[None]).softmax(1)[0]
print(classes[int(probabilities.argmax())], float(probabilities.max()))
`;
}

export async function render(view, { project }) {
  if (project.kind === 'text') return textExports.render(view, { project });
  const [status, manifest] = await Promise.all([tejas.modelStatus(project.id),
    tejas.manifest().catch(() => null)]);
  const stem = fileStem(project.name);
  const model = status.model;
  const { section: modelSection, ready } = modelCard(project, status, manifest);
  if (ready) {
    const classNames = model.classes.map((c) => c.name);
    const onnxButton = h('button', { type: 'button', class: 'primary', id: 'download-onnx' }, 'Download ONNX');
    saveOnClick(onnxButton, 'Preparing…', () => tejas.exportOnnx(project.id), `${stem}.onnx`);
    const ptButton = h('button', { type: 'button', class: 'primary', id: 'download-pt' }, 'Download PyTorch (.pt)');
    saveOnClick(ptButton, 'Preparing…', () => tejas.exportPytorch(project.id), `${stem}.pt`);
    append(modelSection, 
      h('p', { class: 'muted' }, `${manifest?.architecture ?? 'The backbone'} with your ${plural(classNames.length, 'class', 'classes')}: `
        + `${classNames.join(', ')}. Each file is standalone and runs without Tejas.`),
      h('div', { class: 'export-item' }, h('h3', {}, 'ONNX'), h('p', {}, 'For onnxruntime in Python, C#, C++, Java, JavaScript or on phones.'),
        onnxButton, manifest && codeBlock('onnx-snippet', onnxSnippet(`${stem}.onnx`, manifest.input), 'Python code that loads the ONNX file')),
      h('div', { class: 'export-item' }, h('h3', {}, 'PyTorch'), h('p', {}, `A state dict for torchvision's ${manifest?.architecture ?? 'model'}.`),
        ptButton, manifest && codeBlock('pt-snippet', pytorchSnippet(`${stem}.pt`, manifest.architecture, classNames, manifest.input), 'Python code that loads the PyTorch file')));
  }

  const datasetButton = h('button', { type: 'button', class: 'secondary', id: 'download-dataset' }, 'Download dataset (.zip)');
  saveOnClick(datasetButton, 'Zipping…', () => tejas.exportDatasetZip(project.id), `${stem}-dataset.zip`);
  const projectButton = h('button', { type: 'button', class: 'secondary', id: 'download-project' }, 'Download project file');
  saveOnClick(projectButton, 'Packing…', () => tejas.exportProject(project.id), `${stem}.tejas.zip`);

  const zipInput = filePicker('A dataset zip', { accept: '.zip,application/zip', id: 'import-dataset' }, ([file]) => {
    busy(zipButton, 'Importing…', async () => {
      try {
        const result = await tejas.addDatasetZip(project.id, file);
        toast(`Added ${plural(result.added, 'image')} from ${file.name}${result.skipped.length ? `; skipped ${result.skipped.length} (${result.skipped[0].name}: ${result.skipped[0].reason})` : ''}.`);
      } catch (error) { showError(error, `${file.name}: `); }
    });
  });
  const zipButton = h('button', { type: 'button', class: 'secondary', onclick: () => zipInput.click() }, 'Add images from a dataset zip…');
  const projectInput = filePicker('A Tejas project file', { accept: '.zip,application/zip', id: 'import-project' }, ([file]) => {
    busy(projectImport, 'Importing…', async () => {
      try {
        const result = await tejas.importProject(file);
        toast(`Imported "${result.project.name}" as a new project with ${plural(result.models, 'model')}.`);
        location.hash = projectUrl(result.project.id);
      } catch (error) { showError(error, `${file.name}: `); }
    });
  });
  const projectImport = h('button', { type: 'button', class: 'secondary', onclick: () => projectInput.click() }, 'Import a project file…');

  append(view, 
    h('div', { class: 'title-row' }, h('h1', {}, 'Export')),
    modelSection,
    h('section', { class: 'card', 'aria-labelledby': 'data-export-title' },
      h('h2', { id: 'data-export-title' }, 'Data'),
      h('p', { class: 'muted' }, 'The dataset zip has a folder per class (the ImageFolder layout PyTorch, Keras and most tools read). '
        + 'The project file also holds every trained model, to move the project to another browser.'),
      h('div', { class: 'row wrap' }, datasetButton, projectButton)),
    h('section', { class: 'card', 'aria-labelledby': 'import-title' },
      h('h2', { id: 'import-title' }, 'Import'),
      h('div', { class: 'row wrap' }, zipButton, zipInput, projectImport, projectInput),
      h('small', { class: 'hint' }, 'A dataset zip adds its images to this project (into classes named after its folders); '
        + 'a project file becomes a new project.')));
  return null;
}
