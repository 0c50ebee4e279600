// Model-vs-human categorisation: a fixation square, the image for a counted number of display
// frames, its 1/f noise mask for a counted number, then a grid of the categories to click
// (or pressing its key) within the response window. Frames are counted on requestAnimationFrame: a change made in a
// frame's callback is painted in that frame, so the callbacks' timestamps measure how long each
// part was up. Served as /static/js/tasks/categorisation.js.
import { el, picture } from './choices.js';

const FALLBACK_FRAME_MS = 1000 / 60;

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : FALLBACK_FRAME_MS;
}

/** The fixation for stimulus.fixation_ms (measuring the frame period meanwhile), the image for
 * round(stimulus_ms / period) frames, the mask for round(mask_ms / period), then the grid:
 * what was shown, as the answer reports it, and the grid's onset. */
async function present(parts, stimulus, nextFrame) {
  const stamps = [await nextFrame()];
  const period = () => median(stamps.slice(1).map((t, i) => t - stamps[i]));
  while (stamps.length < 3 || stamps[stamps.length - 1] - stamps[0] < stimulus.fixation_ms - period() / 2) {
    stamps.push(await nextFrame());
  }
  const frameMs = period();
  const imageFrames = Math.max(1, Math.round(stimulus.stimulus_ms / frameMs));
  const maskFrames = Math.round(stimulus.mask_ms / frameMs);
  let t = await nextFrame();
  parts.fixation.hidden = true;
  parts.image.hidden = false;
  const imageOn = t;
  for (let i = 0; i < imageFrames; i += 1) t = await nextFrame();
  parts.image.hidden = true;
  parts.mask.hidden = maskFrames === 0;
  const maskOn = t;
  for (let i = 0; i < maskFrames; i += 1) t = await nextFrame();
  parts.mask.hidden = true;
  parts.grid.classList.remove('waiting');
  // The frames each part was actually up: its measured duration in frames (a held frame
  // counts; the planned counts are round(planned ms / frame_ms)).
  return {
    onset: t,
    shown: { stimulus_frames: Math.round((maskOn - imageOn) / frameMs),
             mask_frames: Math.round((t - maskOn) / frameMs), stimulus_ms: maskOn - imageOn,
             mask_ms: t - maskOn, frame_ms: frameMs },
  };
}

/** The trial's screen: the stage (fixation, image, mask) above the grid of categories. */
export function render(loader, stimulus, words) {
  const buttons = [];
  const box = el('div', 'categorisation');
  const stage = el('div', 'cat-stage');
  const parts = {
    fixation: el('div', 'cat-fixation'),
    image: picture(loader, stimulus.image, 'cat-image'),
    mask: picture(loader, stimulus.mask, 'cat-mask'),
    grid: el('div', 'cat-grid waiting'),
  };
  parts.image.hidden = true;
  parts.mask.hidden = true;
  stage.append(parts.fixation, parts.image, parts.mask);
  const columns = Math.ceil(Math.sqrt(stimulus.categories.length));
  parts.grid.style.gridTemplateColumns = `repeat(${columns}, minmax(6em, 1fr))`;
  parts.grid.setAttribute('aria-label', words.question);
  stimulus.categories.forEach((category, i) => {
    const button = el('button', 'choice cat-choice', category);
    const key = words.category_keys[i];
    if (key) {
      const shown = el('kbd', 'key', key);
      shown.setAttribute('aria-hidden', 'true');
      button.append(shown);
      button.dataset.key = key;
    }
    button.type = 'button';
    button.disabled = true;
    button.dataset.choice = category;
    button.dataset.answer = JSON.stringify({ choice: category });
    buttons.push(button);
    parts.grid.append(button);
  });
  box.append(stage, parts.grid);
  return {
    element: box,
    buttons,
    target: (screen, key) => [...screen.querySelectorAll('.cat-choice')]
      .find((button) => button.dataset.choice === key) || null,
    present: (nextFrame) => present(parts, stimulus, nextFrame),
    timeoutMs: stimulus.response_window_ms,
    noAnswer: { choice: words.no_response },
  };
}

/** The instructions' example: a practice image and the categories to choose from. */
export function example(loader, stimulus) {
  const box = el('div', 'example cat-example');
  box.append(picture(loader, stimulus.image, 'cat-image'),
    el('p', 'cat-example-names', stimulus.categories.join(' \u00b7 ')));
  return box;
}
