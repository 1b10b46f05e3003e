// What the app keeps in sessionStorage (this tab only): the access token, open holds and
// what a confirmation page needs after a reload.

const AUTH = 'bx.auth';

/** The signed-in guest ({access_token, nickname, user_id, expires_at}) or null. */
export function currentUser() {
  const raw = sessionStorage.getItem(AUTH);
  if (!raw) return null;
  try {
    const user = JSON.parse(raw);
    // A token within a few seconds of its expiry is treated as gone (clock skew, latency).
    if (!user.access_token || user.expires_at - 5000 < Date.now()) return null;
    return user;
  } catch {
    return null;
  }
}

export function saveUser(grant) {
  const user = {
    access_token: grant.access_token,
    nickname: grant.nickname,
    user_id: grant.user_id,
    expires_at: Date.now() + grant.expires_in * 1000,
  };
  sessionStorage.setItem(AUTH, JSON.stringify(user));
  window.dispatchEvent(new Event('bx-auth'));
  return user;
}

export function forgetUser() {
  sessionStorage.removeItem(AUTH);
  window.dispatchEvent(new Event('bx-auth'));
}

const holdKey = (sessionId) => `bx.hold.${sessionId}`;

/** The open hold of a session ({hold_id, seat_ids, labels, expires_at, key}) or null. */
export function savedHold(sessionId) {
  try {
    const hold = JSON.parse(sessionStorage.getItem(holdKey(sessionId)) || 'null');
    return hold && Date.parse(hold.expires_at) > Date.now() ? hold : null;
  } catch {
    return null;
  }
}
export const saveHold = (sessionId, hold) =>
  sessionStorage.setItem(holdKey(sessionId), JSON.stringify(hold));
export const dropHold = (sessionId) => sessionStorage.removeItem(holdKey(sessionId));

/** Seat labels and titles of a reservation, for pages that cannot read the seat map. */
export const saveReservationInfo = (id, info) =>
  sessionStorage.setItem(`bx.res.${id}`, JSON.stringify(info));
export function reservationInfo(id) {
  try {
    return JSON.parse(sessionStorage.getItem(`bx.res.${id}`) || 'null');
  } catch {
    return null;
  }
}
