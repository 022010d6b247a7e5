/* The segment rule builder: draws the rule JSON of the form's textarea as a tree of groups (all / any,
   each optionally negated) and conditions (a contact field, something done, email engagement,
   membership of another segment, or raw JSON for anything else), writes the tree back into the
   textarea on every edit, and shows the live count and a sample from POST /app/segments/preview (JSON,
   with the form's CSRF token in X-CSRF-Token), debounced. The form posts the textarea: without this
   script a person types the JSON. No framework. */
(function () {
  "use strict";
  var root = document.getElementById("builder");
  var area = document.getElementById("rules");
  if (!root || !area || !area.form) { return; }
  var lang = JSON.parse(root.getAttribute("data-language"));
  var others = JSON.parse(root.getAttribute("data-segments") || "[]");
  var form = area.form;
  var csrf = form.querySelector("input[name=csrf]").value;
  var VALUELESS = ["is_set", "is_not_set", "anniversary_today"];
  var OP_LABELS = {
    eq: "equals", neq: "does not equal", contains: "contains", not_contains: "does not contain",
    starts_with: "starts with", ends_with: "ends with", gt: "greater than", gte: "at least",
    lt: "less than", lte: "at most", between: "between", "in": "is one of", not_in: "is none of",
    is_set: "is set", is_not_set: "is not set", before: "before", after: "after",
    within_last: "within the last", more_than_ago: "more than … ago", anniversary_today: "anniversary is today"
  };
  var KEYS = {
    attr: ["field", "op", "value"],
    beh: ["event", "page", "where", "count", "total", "within", "first", "last"],
    mail: ["email", "message", "journey", "within", "count", "include_machine_generated"],
    member: ["segment", "member"]
  };
  var counter = 0;
  var tree = null;

  function uid() { counter += 1; return "rb" + counter; }
  function has(obj, key) { return Object.prototype.hasOwnProperty.call(obj, key); }
  function plain(obj) { return obj !== null && typeof obj === "object" && !Array.isArray(obj); }
  function only(obj, keys) { return Object.keys(obj).every(function (k) { return keys.indexOf(k) >= 0; }); }

  /* ---- model <-> JSON ---------------------------------------------------------------------- */

  function group(mode, kids) { return { t: "group", id: uid(), mode: mode, neg: false, kids: kids || [] }; }
  function attr() { return { t: "attr", id: uid(), field: "email", key: "", op: "is_set", value: "", to: "", as: "text" }; }
  function counting() { return { op: "", a: "", b: "" }; }
  function beh() {
    return { t: "beh", id: uid(), what: "event", name: "", where: [], count: counting(), within: "",
      total: { property: "", op: "", a: "", b: "" }, first: { op: "", value: "" }, last: { op: "", value: "" } };
  }
  function mail() { return { t: "mail", id: uid(), email: "opened", message: "", journey: "", within: "", count: counting(), machine: false }; }
  function member() { return { t: "member", id: uid(), segment: others.length ? others[0].id : "", member: true }; }
  function prop() { return { t: "attr", id: uid(), field: "", key: "", op: "eq", value: "", to: "", as: "text", property: true }; }
  var MAKERS = { attr: attr, beh: beh, mail: mail, member: member };

  function fieldKind(node) {
    if (node.property || node.field.slice(-1) === ".") { return "json"; }
    for (var i = 0; i < lang.fields.length; i += 1) {
      if (lang.fields[i].name === node.field) { return lang.fields[i].kind; }
    }
    return "json";
  }
  function fieldPath(node) { return node.field.slice(-1) === "." ? node.field + node.key : node.field; }
  function number(text) {
    var t = String(text).trim();
    return t !== "" && isFinite(Number(t)) ? Number(t) : t;
  }
  function scalar(kind, as, text) {
    if (kind === "number" || (kind === "json" && as === "number")) { return number(text); }
    if (kind === "json" && as === "bool") { return String(text).trim() === "true"; }
    return text;
  }
  function valueOf(node) {
    var kind = fieldKind(node);
    var op = node.op;
    if (op === "between") { return [number(node.value), number(node.to)]; }
    if (op === "in" || op === "not_in") {
      return String(node.value).split(",").map(function (s) { return s.trim(); })
        .filter(function (s) { return s !== ""; }).map(function (s) { return scalar(kind, node.as, s); });
    }
    if (["gt", "gte", "lt", "lte"].indexOf(op) >= 0) { return kind === "stage" ? node.value : number(node.value); }
    if (op === "eq" || op === "neq") { return scalar(kind, node.as, node.value); }
    return node.value;
  }
  function comparison(node, path) {
    var out = { field: path, op: node.op };
    if (VALUELESS.indexOf(node.op) < 0) { out.value = valueOf(node); }
    return out;
  }
  function range(spec) {
    if (!spec.op) { return null; }
    return spec.op === "between" ? [number(spec.a), number(spec.b)] : number(spec.a);
  }
  function toRule(node) {
    if (node.t === "group") {
      var body = {};
      body[node.mode] = node.kids.map(toRule);
      if (!node.neg) { return body; }
      return { not: node.kids.length === 1 ? toRule(node.kids[0]) : body };
    }
    if (node.t === "attr") { return comparison(node, fieldPath(node)); }
    if (node.t === "beh") {
      var out = {};
      out[node.what] = node.name;
      if (node.where.length) { out.where = node.where.map(function (p) { return p.t === "raw" ? p.json : comparison(p, p.field); }); }
      if (node.count.op) { out.count = {}; out.count[node.count.op] = range(node.count); }
      if (node.total.op) { out.total = { property: node.total.property }; out.total[node.total.op] = range(node.total); }
      if (node.within.trim()) { out.within = node.within.trim(); }
      ["first", "last"].forEach(function (k) { if (node[k].op) { out[k] = { op: node[k].op, value: node[k].value.trim() }; } });
      return out;
    }
    if (node.t === "mail") {
      var m = { email: node.email };
      if (node.message.trim()) { m.message = node.message.trim(); }
      if (node.journey.trim()) { m.journey = node.journey.trim(); }
      if (node.within.trim()) { m.within = node.within.trim(); }
      if (node.count.op) { m.count = {}; m.count[node.count.op] = range(node.count); }
      if (node.machine) { m.include_machine_generated = true; }
      return m;
    }
    if (node.t === "member") { return node.member ? { segment: node.segment } : { segment: node.segment, member: false }; }
    return node.json;
  }

  function asOf(value) {
    var first = Array.isArray(value) ? value[0] : value;
    return typeof first === "number" ? "number" : typeof first === "boolean" ? "bool" : "text";
  }
  function fromComparison(node, rule) {
    node.op = rule.op;
    var v = rule.value;
    if (Array.isArray(v) && rule.op === "between") { node.value = String(v[0]); node.to = String(v[1]); }
    else if (Array.isArray(v)) { node.value = v.map(String).join(", "); }
    else if (v !== undefined && v !== null) { node.value = String(v); }
    node.as = asOf(v);
    return node;
  }
  function fromRange(spec, given) {
    var op = Object.keys(given).filter(function (k) { return lang.count_ops.indexOf(k) >= 0; })[0] || "";
    spec.op = op;
    if (op === "between") { spec.a = String(given[op][0]); spec.b = String(given[op][1]); }
    else if (op) { spec.a = String(given[op]); }
  }
  function raw(rule) { return { t: "raw", id: uid(), json: rule }; }
  function fromRule(rule) {
    if (!plain(rule)) { return raw(rule); }
    var keys = Object.keys(rule);
    if (keys.length === 1 && (keys[0] === "all" || keys[0] === "any") && Array.isArray(rule[keys[0]])) {
      return group(keys[0], rule[keys[0]].map(fromRule));
    }
    if (keys.length === 1 && keys[0] === "not") {
      var inner = fromRule(rule.not);
      if (inner.t === "group" && !inner.neg && !has(rule.not, "not")) { inner.neg = true; return inner; }
      var g = group("all", [inner]);
      g.neg = true;
      return g;
    }
    if (has(rule, "field") && only(rule, KEYS.attr) && typeof rule.field === "string") {
      var node = attr();
      var known = lang.fields.some(function (f) { return f.name === rule.field; });
      var prefix = lang.prefixed.map(function (p) { return p.prefix; })
        .filter(function (p) { return rule.field.indexOf(p) === 0 && rule.field.length > p.length; })
        .sort(function (a, b) { return b.length - a.length; })[0];
      if (known) { node.field = rule.field; }
      else if (prefix) { node.field = prefix; node.key = rule.field.slice(prefix.length); }
      else { return raw(rule); }
      return fromComparison(node, rule);
    }
    if ((has(rule, "event") || has(rule, "page")) && only(rule, KEYS.beh)) {
      var b = beh();
      b.what = has(rule, "event") ? "event" : "page";
      b.name = String(rule[b.what]);
      b.where = (rule.where || []).map(function (p) {
        if (!plain(p) || !only(p, KEYS.attr) || typeof p.field !== "string") { return raw(p); }
        var n = prop();
        n.field = p.field;
        return fromComparison(n, p);
      });
      if (plain(rule.count)) { fromRange(b.count, rule.count); }
      if (plain(rule.total)) { b.total.property = String(rule.total.property || ""); fromRange(b.total, rule.total); }
      b.within = rule.within || "";
      ["first", "last"].forEach(function (k) { if (plain(rule[k])) { b[k] = { op: rule[k].op || "", value: String(rule[k].value || "") }; } });
      return b;
    }
    if (has(rule, "email") && only(rule, KEYS.mail)) {
      var m = mail();
      m.email = rule.email;
      m.message = rule.message || "";
      m.journey = rule.journey || "";
      m.within = rule.within || "";
      if (plain(rule.count)) { fromRange(m.count, rule.count); }
      m.machine = rule.include_machine_generated === true;
      return m;
    }
    if (has(rule, "segment") && only(rule, KEYS.member)) {
      var s = member();
      s.segment = String(rule.segment);
      s.member = rule.member !== false;
      return s;
    }
    return raw(rule);
  }

  /* ---- drawing ----------------------------------------------------------------------------- */

  function el(tag, attrs, kids) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (kids || []).forEach(function (kid) { node.append(kid); });
    return node;
  }
  function labelled(text, control) {
    return el("div", { "class": "ctl" }, [el("label", { "for": control.id }, [text]), control]);
  }
  function choice(id, options, value, change) {
    var select = el("select", { id: id });
    options.forEach(function (o) {
      var pair = Array.isArray(o) ? o : [o, o];
      var option = el("option", { value: pair[0] }, [pair[1]]);
      if (String(pair[0]) === String(value)) { option.selected = true; }
      select.append(option);
    });
    select.addEventListener("change", function () { change(select.value); });
    return select;
  }
  function entry(id, value, change, extra) {
    var input = el("input", Object.assign({ id: id, value: value }, extra || {}));
    input.value = value;
    input.addEventListener("input", function () { change(input.value); edited(); });
    return input;
  }
  function button(text, act, cls) {
    var b = el("button", { type: "button", "class": cls || "small" }, [text]);
    b.addEventListener("click", act);
    return b;
  }
  function redraw(focus) {
    root.textContent = "";
    root.append(drawGroup(tree, null));
    edited();
    var found = focus && document.getElementById(focus);
    if (found) { found.focus(); }
  }
  function opLabel(op, kind) {
    if (kind === "stage" && ["gt", "gte", "lt", "lte"].indexOf(op) >= 0) {
      return { gt: "later than", gte: "at or later than", lt: "earlier than", lte: "at or earlier than" }[op] + " (" + op + ")";
    }
    return (OP_LABELS[op] || op) + " (" + op + ")";
  }

  function drawValue(node, kind, box) {
    var op = node.op;
    var id = node.id;
    if (VALUELESS.indexOf(op) >= 0) { return; }
    function set(k) { return function (v) { node[k] = v; }; }
    if (kind === "json" && ["eq", "neq", "in", "not_in"].indexOf(op) >= 0) {
      box.append(labelled("As", choice(id + "-as", [["text", "text"], ["number", "number"], ["bool", "true / false"]], node.as,
        function (v) { node.as = v; redraw(id + "-as"); })));
    }
    if (op === "between") {
      box.append(labelled("From", entry(id + "-value", node.value, set("value"), { type: "number", step: "any" })));
      box.append(labelled("To", entry(id + "-to", node.to, set("to"), { type: "number", step: "any" })));
    } else if (op === "in" || op === "not_in") {
      box.append(labelled("Values (comma-separated)", entry(id + "-value", node.value, set("value"))));
    } else if (kind === "stage") {
      if (lang.stages.indexOf(node.value) < 0) { node.value = lang.stages[0]; }
      box.append(labelled("Stage", choice(id + "-value", lang.stages, node.value, function (v) { node.value = v; edited(); })));
    } else if (kind === "json" && node.as === "bool" && (op === "eq" || op === "neq")) {
      if (node.value !== "false") { node.value = "true"; }
      box.append(labelled("Value", choice(id + "-value", ["true", "false"], node.value, function (v) { node.value = v; edited(); })));
    } else {
      var numeric = kind === "number" || ["gt", "gte", "lt", "lte"].indexOf(op) >= 0 || (kind === "json" && node.as === "number" && (op === "eq" || op === "neq"));
      var hint = { before: "2026-03-01", after: "2026-03-01", within_last: "30d", more_than_ago: "30d" }[op];
      var extra = numeric ? { type: "number", step: "any" } : hint ? { placeholder: hint } : {};
      box.append(labelled("Value", entry(id + "-value", node.value, set("value"), extra)));
    }
  }

  function drawComparison(node, box) {
    var kind = fieldKind(node);
    if (node.property) {
      box.append(labelled("Property", entry(node.id + "-field", node.field, function (v) { node.field = v; })));
    } else {
      var options = lang.fields.map(function (f) { return [f.name, f.name]; })
        .concat(lang.prefixed.map(function (p) { return [p.prefix, p.label + " (" + p.prefix + "…)"]; }));
      box.append(labelled("Field", choice(node.id + "-field", options, node.field, function (v) {
        node.field = v;
        var ops = lang.ops[fieldKind(node)];
        if (ops.indexOf(node.op) < 0) { node.op = ops[0]; }
        redraw(node.id + "-field");
      })));
      if (node.field.slice(-1) === ".") {
        box.append(labelled("Key", entry(node.id + "-key", node.key, function (v) { node.key = v; }, { placeholder: "plan" })));
      }
    }
    var ops = node.property ? lang.property_ops : lang.ops[kind];
    if (ops.indexOf(node.op) < 0) { node.op = ops[0]; }
    box.append(labelled("Operator", choice(node.id + "-op", ops.map(function (o) { return [o, opLabel(o, kind)]; }), node.op,
      function (v) { node.op = v; redraw(node.id + "-op"); })));
    drawValue(node, kind, box);
  }

  function drawRange(node, key, label, ops, box) {
    var spec = node[key];
    var id = node.id + "-" + key;
    box.append(labelled(label, choice(id + "-op", [["", key === "count" ? "at least once" : "any"]].concat(ops.map(function (o) { return [o, opLabel(o)]; })),
      spec.op, function (v) { spec.op = v; redraw(id + "-op"); })));
    if (spec.op) {
      box.append(labelled(spec.op === "between" ? "From" : "Number", entry(id + "-a", spec.a, function (v) { spec.a = v; }, { type: "number", step: "any", min: "0" })));
      if (spec.op === "between") { box.append(labelled("To", entry(id + "-b", spec.b, function (v) { spec.b = v; }, { type: "number", step: "any", min: "0" }))); }
    }
  }

  function drawBehaviour(node, box) {
    box.append(labelled("Of", choice(node.id + "-what", [["event", "track event"], ["page", "page view"]], node.what,
      function (v) { node.what = v; redraw(node.id + "-what"); })));
    box.append(labelled(node.what === "event" ? "Event name" : "Page name (* for any)",
      entry(node.id + "-name", node.name, function (v) { node.name = v; })));
    drawRange(node, "count", "How many times", lang.count_ops, box);
    box.append(labelled("Within (e.g. 30d)", entry(node.id + "-within", node.within, function (v) { node.within = v; }, { placeholder: "30d" })));
    ["first", "last"].forEach(function (k) {
      box.append(labelled(k === "first" ? "First time" : "Last time", choice(node.id + "-" + k + "-op",
        [["", "any time"]].concat(lang.when_ops.map(function (o) { return [o, opLabel(o)]; })), node[k].op,
        function (v) { node[k].op = v; redraw(node.id + "-" + k + "-op"); })));
      if (node[k].op) {
        box.append(labelled(k === "first" ? "First time value" : "Last time value",
          entry(node.id + "-" + k + "-value", node[k].value, function (v) { node[k].value = v; }, { placeholder: node[k].op.indexOf("_") > 0 ? "30d" : "2026-03-01" })));
      }
    });
    box.append(labelled("Sum of property", entry(node.id + "-total-property", node.total.property, function (v) { node.total.property = v; }, { placeholder: "revenue" })));
    drawRange(node, "total", "Sum is", lang.count_ops, box);
    var list = el("ul", { "class": "props" });
    node.where.forEach(function (p, i) {
      var item = el("li", { "class": "cond prop" });
      if (p.t === "raw") { drawRaw(p, item); } else { drawComparison(p, item); }
      item.append(button("Remove property condition", function () { node.where.splice(i, 1); redraw(node.id + "-add-prop"); }));
      list.append(item);
    });
    var add = button("Add property condition", function () { var p = prop(); node.where.push(p); redraw(p.id + "-field"); });
    add.id = node.id + "-add-prop";
    box.append(el("div", { "class": "where" }, [el("span", {}, ["Where the event's properties:"]), list, add]));
  }

  function drawMail(node, box) {
    box.append(labelled("Email", choice(node.id + "-email", lang.emails, node.email, function (v) { node.email = v; edited(); })));
    box.append(labelled("Message id", entry(node.id + "-message", node.message, function (v) { node.message = v; })));
    box.append(labelled("Journey id", entry(node.id + "-journey", node.journey, function (v) { node.journey = v; })));
    box.append(labelled("Within (e.g. 14d)", entry(node.id + "-within", node.within, function (v) { node.within = v; }, { placeholder: "14d" })));
    drawRange(node, "count", "How many times", lang.count_ops, box);
    var tick = el("input", { type: "checkbox", id: node.id + "-machine" });
    tick.checked = node.machine;
    tick.addEventListener("change", function () { node.machine = tick.checked; edited(); });
    box.append(el("label", { "class": "ctl tick" }, [tick, " Count machine-generated opens and clicks"]));
  }

  function drawMember(node, box) {
    var options = others.map(function (s) { return [s.id, s.name]; });
    if (node.segment && !others.some(function (s) { return s.id === node.segment; })) { options.push([node.segment, node.segment]); }
    if (!options.length) { options.push(["", "(no other segment)"]); }
    box.append(labelled("Is", choice(node.id + "-member", [["true", "in"], ["false", "not in"]], String(node.member),
      function (v) { node.member = v === "true"; edited(); })));
    box.append(labelled("Segment", choice(node.id + "-segment", options, node.segment, function (v) { node.segment = v; edited(); })));
  }

  function drawRaw(node, box) {
    var text = el("textarea", { id: node.id + "-json", rows: "3", spellcheck: "false" });
    text.value = JSON.stringify(node.json);
    text.addEventListener("input", function () {
      try { node.json = JSON.parse(text.value); text.removeAttribute("aria-invalid"); edited(); }
      catch (e) { text.setAttribute("aria-invalid", "true"); }
    });
    box.append(labelled("Condition (JSON)", text));
  }

  function drawCondition(node, parent, index) {
    var box = el("div", { "class": "cond", "data-kind": node.t });
    var kinds = [["attr", "Contact field"], ["beh", "Did something (event or page view)"], ["mail", "Email engagement"], ["member", "Segment membership"]];
    if (node.t === "raw") { kinds.push(["raw", "JSON"]); }
    box.append(labelled("Condition", choice(node.id + "-kind", kinds, node.t, function (v) {
      var made = MAKERS[v]();
      parent.kids[index] = made;
      redraw(made.id + "-kind");
    })));
    if (node.t === "attr") { drawComparison(node, box); }
    else if (node.t === "beh") { drawBehaviour(node, box); }
    else if (node.t === "mail") { drawMail(node, box); }
    else if (node.t === "member") { drawMember(node, box); }
    else { drawRaw(node, box); }
    box.append(button("Remove condition", function () { parent.kids.splice(index, 1); redraw(parent.id + "-add"); }, "small danger"));
    return box;
  }

  function drawGroup(node, parent) {
    var box = el("fieldset", { "class": "group" + (node.neg ? " negated" : ""), id: node.id });
    box.append(el("legend", {}, [parent ? "Group" : "Contacts who match"]));
    var head = el("div", { "class": "group-head" });
    head.append(labelled("Match", choice(node.id + "-mode", [["all", "all of these"], ["any", "any of these"]], node.mode,
      function (v) { node.mode = v; redraw(node.id + "-mode"); })));
    var neg = el("input", { type: "checkbox", id: node.id + "-neg" });
    neg.checked = node.neg;
    neg.addEventListener("change", function () { node.neg = neg.checked; redraw(node.id + "-neg"); });
    head.append(el("label", { "class": "ctl tick" }, [neg, " Not (contacts for whom this group does not hold)"]));
    box.append(head);
    var list = el("ul", { "class": "kids" });
    node.kids.forEach(function (kid, i) {
      list.append(el("li", {}, [kid.t === "group" ? drawGroup(kid, node) : drawCondition(kid, node, i)]));
      if (kid.t === "group") {
        list.lastChild.append(button("Remove group", function () { node.kids.splice(i, 1); redraw(node.id + "-add"); }, "small danger"));
      }
    });
    box.append(list);
    var add = button("Add condition", function () { var c = attr(); node.kids.push(c); redraw(c.id + "-field"); });
    add.id = node.id + "-add";
    box.append(el("div", { "class": "group-actions" }, [add,
      button("Add group", function () { var g = group("any", [attr()]); node.kids.push(g); redraw(g.id + "-mode"); })]));
    return box;
  }

  /* ---- textarea and preview ---------------------------------------------------------------- */

  var timer = null;
  var asked = 0;
  var count = document.getElementById("segment-count");
  var sample = document.getElementById("segment-sample");
  var problems = document.getElementById("segment-problems");

  function edited() {
    area.value = JSON.stringify(toRule(tree), null, 2);
    later();
  }
  function later() {
    clearTimeout(timer);
    timer = setTimeout(preview, 350);
  }
  function show(text, list, bad) {
    count.textContent = text;
    problems.textContent = "";
    sample.textContent = "";
    problems.hidden = !bad;
    (list || []).forEach(function (line) { (bad ? problems : sample).append(el("li", {}, [line])); });
  }
  function preview() {
    var rule;
    try { rule = JSON.parse(area.value); }
    catch (e) { show("The rule is not valid JSON: " + e.message, [], true); return; }
    asked += 1;
    var mine = asked;
    count.textContent = "Counting…";
    fetch("/app/segments/preview", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ rules: rule })
    }).then(function (answer) {
      return answer.json().then(function (body) {
        if (mine !== asked) { return; }
        if (!answer.ok) {
          show(body.message || "The rule was refused.", (body.problems || []).map(function (p) { return p.path + ": " + p.message; }), true);
          return;
        }
        count.setAttribute("data-count", String(body.count));
        var lines = body.sample.map(function (c) { return (c.name ? c.name + " " : "") + (c.email ? "<" + c.email + ">" : c.id) + " · " + c.stage; });
        show(body.count + (body.count === 1 ? " contact matches" : " contacts match") + (body.sample.length ? ", for example:" : "."), lines, false);
      });
    }).catch(function () {
      if (mine === asked) { show("The count is not available right now.", [], true); }
    });
  }
  function load() {
    var rule;
    try { rule = JSON.parse(area.value); } catch (e) { return false; }
    var node = fromRule(rule);
    tree = node.t === "group" ? node : group("all", [node]);
    root.textContent = "";
    root.append(drawGroup(tree, null));
    return true;
  }

  area.addEventListener("input", function () {
    if (!load()) { show("The rule is not valid JSON yet.", [], true); return; }
    later();
  });
  var kind = document.getElementById("seg-kind");
  function kindShown() { document.getElementById("rule-box").hidden = kind && kind.value === "static"; }
  if (kind) { kind.addEventListener("change", kindShown); kindShown(); }
  if (!load()) { tree = group("all", [attr()]); redraw(null); }
  root.hidden = false;
  document.getElementById("preview").hidden = false;
  preview();
}());
