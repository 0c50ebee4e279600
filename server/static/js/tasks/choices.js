// Pieces shared by the task types answered by choosing one of several images with a confidence
// of 1-3 (experiments/tasks/choice.py): a row per option with its three buttons, and the
// reference grids. The options, their keys and the confidence levels come from the server.
import { el } from '../screens.js';

export { el };

export function picture(loader, id, className) {
  const img = el('img', className);
  img.alt = '';
  img.draggable = false;
  img.decoding = 'sync';
  img.src = loader.url(id);
  return img;
}

export function grid(loader, ids, label, side) {
  const section = el('section', `refs refs-${side}`);
  section.append(el('h3', 'refs-label', label));
  const cells = el('div', 'grid');
  ids.forEach((id) => cells.append(picture(loader, id, 'ref')));
  section.append(cells);
  return section;
}

const capital = (text) => text.charAt(0).toUpperCase() + text.slice(1);

/** The row of one option ({option, name, keys}, as the server sends it) showing image `id`,
 * with a button per confidence level ([[value, text], ...]); each button carries its answer
 * ({choice, confidence}) and its key, and is pushed onto `buttons`. */
export function queryRow(loader, id, option, confidence, buttons) {
  const which = option.option;
  const row = el('div', `query query-${which}`);
  row.dataset.query = which;
  row.append(picture(loader, id, 'query-img'));
  const group = el('div', 'answer');
  const name = capital(option.name);
  group.append(el('span', 'answer-label', `${name} image`));
  confidence.forEach(([level, text], i) => {
    const button = el('button', 'choice', text);
    const key = el('kbd', 'key', option.keys[i]);
    key.setAttribute('aria-hidden', 'true');
    button.append(key);
    button.dataset.key = option.keys[i];
    button.setAttribute('aria-label', `${name} image: ${text} (key ${option.keys[i]})`);
    button.type = 'button';
    button.disabled = true;
    button.dataset.choice = which;
    button.dataset.confidence = String(level);
    button.dataset.answer = JSON.stringify({ choice: which, confidence: level });
    buttons.push(button);
    group.append(button);
  });
  row.append(group);
  return row;
}

/** The centre column: the question above a row per option (`words`: the task type's). */
export function queries(loader, words, stimulus, buttons) {
  const centre = el('section', `queries options-${words.options.length}`);
  centre.append(el('p', 'question', words.question));
  words.options.forEach((option) => centre.append(
    queryRow(loader, stimulus[option.field], option, words.confidence, buttons)));
  return centre;
}

/** The element feedback marks for an answer key (the right image's row). */
export function target(screen, answerKey) {
  return screen.querySelector(`.query-${answerKey}`);
}

export function smallGrid(loader, ids, label) {
  const s = el('div', 'example-side');
  s.append(el('span', 'refs-label', label));
  const g = el('div', 'grid small');
  ids.slice(0, 9).forEach((id) => { const i = el('img', 'ref'); i.alt = ''; i.src = loader.url(id); g.append(i); });
  s.append(g);
  return s;
}
