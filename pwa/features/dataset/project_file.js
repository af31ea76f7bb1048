// The project file: a whole project (its images or texts, classes and every trained model) as one zip
// for another browser — tejas-project.json (the description), the dataset (dataset.zip, or a text project's
// files) and models/<id>.f32 (each model's float32 parameters). The zip is written and read by the Python
// worker (`callPython`); tejas.js's exportProject/importProject pass what they share with the rest of the API.
import { MESSAGE } from '../../protocol.js';
import { listModels, saveImportedModels } from '../train/engine.js';
import { TEXTS_FILE } from '../text/api.js';
import { getProject, listClasses, projectKind } from './projects.js';

const PROJECT_FORMAT = 'tejas-project';

/** The whole project — images, classes, every trained model — as one file for another browser. */
export async function exportProject(projectId, { callPython, exportDatasetZip, textApi }) {
  const project = await getProject(projectId);
  const classes = await listClasses(projectId);
  const models = await listModels(projectId);
  const kind = projectKind(project);
  const description = {
    format: PROJECT_FORMAT, version: 1, name: project.name, created: project.created, kind,
    classes: classes.map((c) => c.name), currentModel: project.modelId ?? null,
    models: models.map(({ parameters, ...model }) => ({ ...model, parametersFile: `models/${model.id}.f32` })),
  };
  const dataset = kind === 'text'
    ? await textApi.projectFileEntries(projectId, classes)
    : [{ name: 'dataset.zip', bytes: new Uint8Array(await (await exportDatasetZip(projectId)).arrayBuffer()) }];
  const entries = [
    { name: 'tejas-project.json', bytes: new TextEncoder().encode(JSON.stringify(description)) },
    ...dataset,
    ...models.map((m) => ({ name: `models/${m.id}.f32`, bytes: new Uint8Array(m.parameters.buffer.slice(0)) })),
  ];
  const bytes = await callPython(MESSAGE.WRITE_ZIP, { entries });
  return new Blob([bytes], { type: 'application/zip' });
}

/** A project file (from exportProject) as a new project here, its models included. */
export async function importProject(file, { callPython, importDatasetZip, textApi }) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const label = file.name || 'project file';
  const read = (names) => callPython(MESSAGE.READ_ZIP, { bytes, label, names });
  const head = await read(['tejas-project.json']);
  if (!head['tejas-project.json']) throw new Error(`${label}: not a Tejas project file (tejas-project.json missing)`);
  const description = JSON.parse(new TextDecoder().decode(head['tejas-project.json']));
  if (description.format !== PROJECT_FORMAT || description.version !== 1) {
    throw new Error(`${label}: a project file of an unknown format or newer version`);
  }
  const isText = description.kind === 'text';
  const files = await read([isText ? TEXTS_FILE : 'dataset.zip', ...description.models.map((m) => m.parametersFile)]);
  const imported = isText
    ? await textApi.importProjectFile(files[TEXTS_FILE], description, label)
    : await importDatasetZip(new File([files['dataset.zip']], 'dataset.zip'), { name: description.name });
  const projectId = imported.project.id;
  const classIds = new Map((await listClasses(projectId)).map((c) => [c.name, c.id]));
  const ids = new Map();
  const models = description.models.map(({ parametersFile, ...model }) => {
    const id = crypto.randomUUID();
    ids.set(model.id, id);
    const raw = files[parametersFile];
    return {
      ...model, id, projectId, classes: model.classes.map((c) => ({ id: classIds.get(c.name), name: c.name })),
      parameters: new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)),
    };
  });
  await saveImportedModels(projectId, models, ids.get(description.currentModel) ?? null);
  return { project: await getProject(projectId), models: models.length, skipped: imported.skipped };
}
