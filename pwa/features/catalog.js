// What can be trained and on what, read from the table the Python core (tejas.catalog) reads too:
// py/tejas/schemas/catalog.json — the training modes and where each runs, the architectures with their
// feature sizes and names, how many classes an exported head serves.
import CATALOG from '../py/tejas/schemas/catalog.json' with { type: 'json' };

export { CATALOG };

/** The modes `where` ('app': this browser, 'trainer': the PyTorch trainer of server jobs) trains `modality` in. */
export const modesFor = (where, modality) =>
  Object.keys(CATALOG.modes).filter((mode) => CATALOG.modes[mode][where].includes(modality));

/** How the app names a mode ("classifier + last block"); an unknown one as it is. */
export const modeLabel = (mode) => CATALOG.modes[mode]?.label ?? mode;

/** How the app names an architecture ("MobileNetV2"); an unknown one as it is. */
export const architectureLabel = (name) => CATALOG.architectures[name]?.label ?? name;
