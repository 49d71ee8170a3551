"""Page assets: wavesurfer.js 7.12.12 (BSD-3-Clause, see LICENSE.wavesurfer) and its plugins,
and the inspection page's own script and style."""
