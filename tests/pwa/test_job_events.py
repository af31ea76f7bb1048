"""The app follows the job events issue 24 added (docs/jobs.md): `notice` is shown while the job waits, and
`released` (its worker was stopped) puts the job back to queued instead of leaving it "running"."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser]


def test_released_and_notice_events_show_in_the_train_panel(app):
    out = app.evaluate(
        """async () => {
          const { applyJobEvent } = await import('/features/jobs/watch.js');
          const watch = { status: 'running', history: [], epoch: { epoch: 2, epochs: 5 }, notify: () => {} };
          const seen = [];
          applyJobEvent(watch, { event: 'released', data: { message: 'The worker running this job was stopped.' } });
          seen.push({ status: watch.status, notice: watch.notice });
          applyJobEvent(watch, { event: 'started', data: { device: 'cpu', resumed_from_epoch: 2 } });
          seen.push({ status: watch.status, notice: watch.notice });
          applyJobEvent(watch, { event: 'notice', data: { message: 'The job queue cannot be reached just now.' } });
          seen.push({ status: watch.status, notice: watch.notice });
          return seen;
        }"""
    )
    assert out == [
        {"status": "queued", "notice": "The worker running this job was stopped."},
        {"status": "running", "notice": None},
        {"status": "running", "notice": "The job queue cannot be reached just now."},
    ]
