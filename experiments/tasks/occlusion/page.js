// The causal occlusion screen (Zimmermann et al. 2021): the unoccluded base image left, the
// maximally activating references right, the two occluded versions (a upper, b lower) in the
// centre with three confidence buttons each.
import { el, grid, picture, queries, smallGrid, target } from './choices.js';

function base(loader, id, label) {
  const section = el('section', 'refs refs-base');
  section.append(el('h3', 'refs-label', label));
  section.append(picture(loader, id, 'base-img'));
  return section;
}

/** The trial's screen with the task type's `words` (question, side labels, from the server):
 * {element, buttons, target(screen, answerKey)}; the runner handles the rest. */
export function render(loader, stimulus, words) {
  const buttons = [];
  const layout = el('div', 'layout');
  const references = stimulus.references.length
    ? grid(loader, stimulus.references, words.labels.right, 'max')
    : el('section', 'refs refs-max refs-none');
  layout.append(base(loader, stimulus.base, words.labels.left),
    queries(loader, words, stimulus, buttons), references);
  return { element: layout, buttons, target: (screen, key) => target(screen, key) };
}

/** The instructions' example: the references and the base image of a practice trial. */
export function example(loader, stimulus, words) {
  const box = el('div', 'example');
  const side = el('div', 'example-side');
  side.append(el('span', 'refs-label', words.labels.left), picture(loader, stimulus.base, 'ref'));
  box.append(side);
  if (stimulus.references.length) box.append(smallGrid(loader, stimulus.references, words.labels.right));
  return box;
}
