// The page module of the test-only yes/no task type (tests/experiments/test_tasks.py: YesNo),
// shipped by its own package and served at /static/js/tasks/yes_no.js: one image, two buttons.
import { el, picture } from './choices.js';

export function render(loader, stimulus, words) {
  const buttons = [];
  const box = el('section', 'yes-no');
  box.append(el('p', 'question', words.question), picture(loader, stimulus.image, 'query-img'));
  [['yes', 'Yes', 'y'], ['no', 'No', 'n']].forEach(([value, text, key]) => {
    const button = el('button', 'choice', text);
    button.type = 'button';
    button.disabled = true;
    button.dataset.key = key;
    button.dataset.says = value;
    button.dataset.answer = JSON.stringify({ says_yes: value === 'yes' });
    buttons.push(button);
    box.append(button);
  });
  return { element: box, buttons, target: (screen, key) => screen.querySelector(`[data-says='${key}']`) };
}

export function example(loader, stimulus) {
  const box = el('div', 'example');
  box.append(picture(loader, stimulus.image, 'ref'));
  return box;
}
