// Non-trial screens: messages, screen check and fullscreen, instructions, feedback form, the end.

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function card(container, id, title) {
  const main = el('main', 'card');
  main.id = id;
  if (title) main.append(el('h1', '', title));
  container.replaceChildren(main);
  return main;
}

function button(text, id) {
  const b = el('button', 'primary', text);
  b.type = 'button';
  if (id) b.id = id;
  return b;
}

const clicked = (b) => new Promise((resolve) => b.addEventListener('click', resolve, { once: true }));

/** A message; with `buttonText` it resolves when pressed, else it stays. */
export async function message(container, id, title, text, buttonText) {
  const main = card(container, id, title);
  (Array.isArray(text) ? text : [text]).forEach((t) => main.append(el('p', '', t)));
  if (buttonText) {
    const b = button(buttonText, `${id}-continue`);
    main.append(b);
    b.focus(); // Enter continues
    await clicked(b);
  }
  return main;
}

export function windowLargeEnough([minW, minH]) {
  return window.innerWidth >= minW && window.innerHeight >= minH;
}

/** The display's refresh rate in Hz: the median of `frames` requestAnimationFrame intervals. */
export async function measureFrameRate(frames = 60) {
  const stamps = [];
  for (let i = 0; i <= frames; i += 1) {
    stamps.push(await new Promise((resolve) => requestAnimationFrame(resolve)));
  }
  const gaps = stamps.slice(1).map((t, i) => t - stamps[i]).sort((a, b) => a - b);
  const median = gaps[Math.floor(gaps.length / 2)];
  return median > 0 ? Math.round(10000 / median) / 10 : null;
}

/** The screen check and the request to go fullscreen (the study goes on if it is refused). */
export async function screenCheck(container, minWindow, log) {
  const main = card(container, 'screen-check', 'Screen check and fullscreen');
  main.append(el('p', '', 'The study runs in fullscreen. Please keep this window in fullscreen ' +
    'until the end and do not switch to other windows or tabs.'));
  const status = el('p', 'notice');
  const go = button('Enter fullscreen and continue', 'fullscreen');
  main.append(status, go);
  const update = () => {
    const ok = windowLargeEnough(minWindow) || document.fullscreenElement;
    go.disabled = !ok;
    status.textContent = ok ? 'Your screen is large enough.' :
      `Your browser window is ${window.innerWidth} x ${window.innerHeight} pixels; the study needs at ` +
      `least ${minWindow[0]} x ${minWindow[1]}. Please maximise the window or use a larger screen.`;
  };
  update();
  window.addEventListener('resize', update);
  await clicked(go);
  window.removeEventListener('resize', update);
  try {
    if (document.documentElement.requestFullscreen && !document.fullscreenElement) {
      await document.documentElement.requestFullscreen({ navigationUI: 'hide' });
    }
  } catch (error) {
    log('fullscreen_refused', { message: String(error && error.message).slice(0, 200) });
  }
  log('screen', { window_width: window.innerWidth, window_height: window.innerHeight,
    screen_width: screen.width, screen_height: screen.height, fullscreen: Boolean(document.fullscreenElement),
    frame_rate: await measureFrameRate() });
}

/** Instruction pages with Back/Next; resolves with the seconds spent on them. */
/** `example(loader, stimulus)`: the task type's example (tasks/<type>.js) of `exampleTrial`. */
export async function instructions(container, pages, loader, exampleTrial, example) {
  const started = performance.now();
  let index = 0;
  while (index < pages.length) {
    const page = pages[index];
    const main = card(container, 'instructions', page.title || 'Instructions');
    main.dataset.page = String(index);
    const body = el('div', 'instruction-text');
    body.innerHTML = page.text; // the researcher's own text from the experiment spec
    main.append(body);
    if (page.example && exampleTrial) main.append(example(loader, exampleTrial.stimulus));
    (page.images || []).forEach((id) => {
      const img = el('img', 'instruction-img');
      img.alt = '';
      img.src = /^(https?:|\/)/.test(id) ? id : loader.url(id);
      main.append(img);
    });
    const nav = el('div', 'nav');
    const back = button('Back', 'instructions-back');
    back.disabled = index === 0;
    const next = button(index + 1 < pages.length ? 'Next' : 'Start the practice', 'instructions-next');
    nav.append(back, next);
    main.append(nav);
    next.focus();
    const which = await Promise.race([clicked(back).then(() => -1), clicked(next).then(() => 1)]);
    index = Math.max(0, index + which);
  }
  return (performance.now() - started) / 1000;
}

/** The optional feedback form; resolves with the text (or '' when skipped). */
export async function feedbackForm(container) {
  const main = card(container, 'feedback-form', 'Almost done');
  main.append(el('p', '', 'Is there anything you would like to tell us about the study (optional)?'));
  const text = el('textarea');
  text.id = 'feedback-text';
  text.maxLength = 5000;
  text.rows = 6;
  const send = button('Finish', 'feedback-submit');
  main.append(text, send);
  await clicked(send);
  return text.value.trim();
}

/**
 * The end: redirect to Prolific, submit to MTurk, or show the code. A failed practice says
 * so and sends the platform the study's code for that case.
 */
/** MTurk's ExternalQuestion submit form with the assignment and `code`. */
function mturkForm(completion, code) {
  const form = el('form');
  form.method = 'POST';
  form.action = completion.submit_url;
  form.id = 'mturk-form';
  for (const [name, value] of [['assignmentId', completion.assignment_id], ['completion_code', code]]) {
    const input = el('input');
    input.type = 'hidden';
    input.name = name;
    input.value = value;
    form.append(input);
  }
  const submit = button('Submit HIT', 'mturk-submit');
  submit.type = 'submit';
  form.append(submit);
  return form;
}

/** A session that timed out after answering and lost its task: what the person answered,
 * what they are owed and how to tell the platform (`owed`: the state's `timed_out`). */
export function timedOut(container, owed, completion) {
  const main = card(container, 'timed-out', 'Your session timed out');
  main.append(el('p', '', 'You were away for longer than the study allows, and your trials ' +
    'went to someone else.'));
  const amount = owed.owed ? `${owed.currency} ${owed.owed.toFixed(2)} for them` : 'for the part you did';
  main.append(el('p', '', `The ${owed.answered} of ${owed.trials} trials you answered are saved: ` +
    `the researcher sees them and pays you ${amount}.`));
  if (completion.source === 'prolific') {
    main.append(el('p', '', 'Please return the study on Prolific; the researcher pays you as a ' +
      'bonus. If they ask for a code, it is:'));
  } else {
    main.append(el('p', '', 'Please use this code on your platform:'));
  }
  const c = el('p', 'code', owed.code);
  c.id = 'completion-code';
  main.append(c);
  if (completion.source === 'mturk') main.append(mturkForm(completion, owed.code));
  return main;
}

export function finish(container, code, completion, status = 'completed', maxAttempts = 0) {
  const failed = status === 'failed_practice';
  const main = card(container, 'done', failed ? 'The study ends here' : 'Thank you!');
  main.dataset.status = status;
  if (failed) {
    main.append(el('p', '', `The practice was not passed within ${maxAttempts || 'the allowed'} ` +
      'attempts, so the study cannot go on. Thank you for your time.'));
  }
  if (completion.source === 'prolific') {
    const url = completion.redirect + encodeURIComponent(code);
    main.append(el('p', '', `${failed ? 'Your answers are saved.' : 'All your answers are saved.'} ` +
      'Taking you back to Prolific...'));
    const link = el('a', '', 'Click here if nothing happens');
    link.href = url;
    link.id = 'prolific-link';
    main.append(link);
    window.location.assign(url);
  } else if (completion.source === 'mturk') {
    main.append(el('p', '', 'All your answers are saved. Submitting the HIT to MTurk...'));
    const form = mturkForm(completion, code);
    main.append(form);
    form.submit();
  } else {
    main.append(el('p', '', 'All your answers are saved. Your completion code is:'));
    const c = el('p', 'code', code);
    c.id = 'completion-code';
    main.append(c);
  }
}
