"""The MidJourney API (`/mj/...`), as midjourney-proxy clients call it: `submit` (imagine, blend,
describe, shorten, swap_face, action, modal), `tasks` (fetch, list, image-seed), `callback`
(the upstream's task updates). What each case answers: docs/mj.md."""
