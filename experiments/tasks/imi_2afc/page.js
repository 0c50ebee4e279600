// IMI's screen: min references left, max references right, a row per query (a upper, b lower;
// the 3-AFC's three rows) in the centre with three confidence buttons each. Served as
// /static/js/tasks/imi_2afc.js (and as imi_3afc.js).
import { el, grid, queries, smallGrid, target } from './choices.js';

/** The trial's screen with the task type's `words` (question, side labels, from the server):
 * {element, buttons, target(screen, answerKey)}; the runner handles the rest. */
export function render(loader, stimulus, words) {
  const buttons = [];
  const layout = el('div', 'layout');
  layout.append(grid(loader, stimulus.references_min, words.labels.left, 'min'),
    queries(loader, words, stimulus, buttons),
    grid(loader, stimulus.references_max, words.labels.right, 'max'));
  return { element: layout, buttons, target: (screen, key) => target(screen, key) };
}

/** The instructions' example: both reference grids of a practice trial. */
export function example(loader, stimulus, words) {
  const box = el('div', 'example');
  box.append(smallGrid(loader, stimulus.references_min, words.labels.left),
    smallGrid(loader, stimulus.references_max, words.labels.right));
  return box;
}
