// The consent page: screen facts for the server, the window-size check, and "continue" for
// a session already started in this browser.
import { Store } from './storage.js';

const main = document.getElementById('consent');
const form = document.getElementById('consent-form');
const start = document.getElementById('start');
const status = document.getElementById('screen-status');
const minW = Number(main.dataset.minWidth);
const minH = Number(main.dataset.minHeight);
const mobile = /Mobi|Android|iPhone|iPad|iPod|Windows Phone/i.test(navigator.userAgent);

function fill() {
  const set = (name, value) => { form.elements[name].value = String(value); };
  set('screen_width', screen.width);
  set('screen_height', screen.height);
  set('window_width', window.innerWidth);
  set('window_height', window.innerHeight);
  set('device_pixel_ratio', window.devicePixelRatio || 1);
  set('touch', navigator.maxTouchPoints > 0 && mobile ? 1 : 0);
  const big = window.innerWidth >= minW && window.innerHeight >= minH;
  start.disabled = mobile || !big;
  status.hidden = big && !mobile;
  status.textContent = mobile ? 'This study needs a desktop or laptop computer.' :
    `Your browser window is ${window.innerWidth} x ${window.innerHeight} pixels; the study needs at ` +
    `least ${minW} x ${minH}. Please maximise the window.`;
}

fill();
window.addEventListener('resize', fill);
form.addEventListener('submit', () => { fill(); start.disabled = true; });

try {
  // Only the same person may continue a session stored in this (perhaps shared) browser:
  // sessions are kept per participant.
  const who = main.dataset.participant || '';
  const saved = new Store(main.dataset.experiment).saved(who);
  if (saved && saved.session_id && saved.participant === who) {
    document.getElementById('resume').hidden = false;
    document.getElementById('resume-link').href =
      `${form.action.replace(/start$/, 'run')}#p=${encodeURIComponent(who)}`;
  }
} catch (_) { /* storage blocked */ }
