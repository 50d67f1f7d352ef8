// The pinbridge join page: username -> code -> one-time dial-in code.
// Plain script, no build step, no outside resources. The session lives in
// an HttpOnly cookie this script never sees; it only shows what the server
// answers.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const STEPS = ['step-username', 'step-code', 'step-conference', 'step-dialin'];
  // Errors after which the participant has to start from the username.
  const RESTART = ['no_session', 'session_expired', 'too_many_attempts', 'code_expired', 'code_closed'];
  let conferences = [];

  function show(step) {
    for (const s of STEPS) {
      $(s).hidden = s !== step;
    }
    const first = $(step).querySelector('input, select');
    if (first) {
      first.focus();
    }
  }

  function showError(message) {
    const e = $('error');
    e.textContent = message || '';
    e.hidden = !message;
  }

  function busy(form, on) {
    for (const el of form.querySelectorAll('button, input, select')) {
      el.disabled = on;
    }
  }

  // POSTs JSON to the join API; resolves to {ok, data} or {ok: false, error}.
  async function post(path, body) {
    let resp;
    try {
      resp = await fetch('/join/api/' + path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch (e) {
      return {
        ok: false,
        error: { code: 'network', message: 'The server could not be reached. Check your connection and try again.' },
      };
    }
    let data = null;
    if (resp.status !== 204) {
      try {
        data = await resp.json();
      } catch (e) {
        data = null;
      }
    }
    if (resp.ok) {
      return { ok: true, data: data || {} };
    }
    const error = (data && data.error) || {
      code: 'http_' + resp.status,
      message: 'Something went wrong (HTTP ' + resp.status + '). Please try again.',
    };
    return { ok: false, error: error };
  }

  function minutes(secs) {
    const m = Math.max(1, Math.round(secs / 60));
    return m === 1 ? '1 minute' : m + ' minutes';
  }

  function clock(secs) {
    const at = new Date(Date.now() + secs * 1000);
    return at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  // The server answers the same for every username (it does not say which
  // exist), so neither does the page.
  function sentText(username) {
    return 'If ' + username + ' is a participant, a code is on its way to the phone ' +
      '(or email address) on file: by text message, email or a call.';
  }

  function restartAfter(error) {
    if (RESTART.includes(error.code)) {
      $('code').value = '';
      show('step-username');
    }
  }

  function conferenceLabel(c) {
    return c.number ? c.name + ' (dial ' + c.number + ')' : c.name;
  }

  function showDialin(d) {
    $('dialin-conference').textContent = d.conference;
    $('dialin-code').textContent = d.code;
    const keys = d.hash ? 'key in this code followed by #.' : 'key in this code.';
    $('dialin-how').textContent = d.number
      ? 'Call ' + d.number + '. When asked for the conference code, ' + keys
      : 'Call the conference line. When asked for the conference code, ' + keys;
    $('dialin-expiry').textContent =
      'It works once, within ' + minutes(d.expires_in) + ' (until ' + clock(d.expires_in) + ').';
    $('another').hidden = conferences.length < 2;
    show('step-dialin');
  }

  $('step-username').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const username = $('username').value.trim();
    if (!username) {
      showError('Enter your username.');
      return;
    }
    showError('');
    busy(ev.target, true);
    const r = await post('start', { username: username });
    busy(ev.target, false);
    if (r.ok) {
      $('sent-to').textContent =
        sentText(username) + ' Enter it below; it is valid for ' + minutes(r.data.expires_in) + '.';
      $('code').maxLength = r.data.code_length || 10;
      $('code').value = '';
      show('step-code');
      return;
    }
    showError(r.error.message);
    if (r.error.code === 'too_many_sends' && r.error.code_pending) {
      $('sent-to').textContent = 'Enter the code you already received.';
      $('code').value = '';
      show('step-code');
    }
  });

  $('step-code').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const code = $('code').value.replace(/\s+/g, '');
    if (!code) {
      showError('Enter the code you received.');
      return;
    }
    showError('');
    busy(ev.target, true);
    const r = await post('check', { code: code });
    busy(ev.target, false);
    if (!r.ok) {
      showError(r.error.message);
      if (r.error.code === 'wrong_code' || r.error.code === 'invalid_code') {
        $('code').select();
      }
      restartAfter(r.error);
      return;
    }
    conferences = r.data.conferences || [];
    $('welcome').textContent = 'Thank you, ' + r.data.name + '. Choose the conference you want to join.';
    const select = $('conference');
    select.replaceChildren();
    for (const c of conferences) {
      const opt = document.createElement('option');
      opt.value = c.name;
      opt.textContent = conferenceLabel(c);
      select.appendChild(opt);
    }
    if (r.data.dialin) {
      showDialin(r.data.dialin);
    } else {
      show('step-conference');
    }
  });

  $('restart').addEventListener('click', async () => {
    showError('');
    await post('reset', {});
    $('code').value = '';
    show('step-username');
  });

  $('step-conference').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError('');
    busy(ev.target, true);
    const r = await post('dialin', { conference: $('conference').value });
    busy(ev.target, false);
    if (r.ok) {
      showDialin(r.data.dialin);
      return;
    }
    showError(r.error.message);
    restartAfter(r.error);
  });

  $('another').addEventListener('click', () => {
    showError('');
    show('step-conference');
  });

  show('step-username');
})();
