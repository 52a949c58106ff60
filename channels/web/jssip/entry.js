window.JsSIP = require("jssip");
