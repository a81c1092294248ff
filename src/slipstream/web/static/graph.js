// The graph tab: lays out the DAG with dagre (vendor/dagre.min.js), draws it as SVG —
// task groups as boxes, tasks as rounded rectangles coloured by the selected run's states,
// dependencies as arrows — and keeps the states live while the run goes on.
"use strict";

(() => {
  const canvas = document.getElementById("graph");
  const data = slipstream.pageData("graph-data");
  if (!canvas || !data || typeof dagre === "undefined") return;
  const { svg } = slipstream;
  const NODE_H = 42;
  const CHAR_W = 7;

  const width = (node) => Math.max(90, Math.max(node.label.length, (node.operator || "").length * 0.85) * CHAR_W + 32);

  function layout() {
    const g = new dagre.graphlib.Graph({ compound: true, multigraph: false });
    g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 46, marginx: 16, marginy: 16 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const group of data.groups) {
      g.setNode("group:" + group.group_id, { label: group.label || group.group_id, group, paddingTop: 20 });
    }
    for (const group of data.groups) {
      if (group.parent) g.setParent("group:" + group.group_id, "group:" + group.parent);
    }
    for (const node of data.nodes) {
      g.setNode(node.id, { width: width(node), height: NODE_H, node });
      if (node.group) g.setParent(node.id, "group:" + node.group);
    }
    for (const [up, down] of data.edges) g.setEdge(up, down);
    dagre.layout(g);
    return g;
  }

  function pathOf(points) {
    // straight segments through dagre's points, rounded at each bend
    let d = `M${points[0].x},${points[0].y}`;
    for (let i = 1; i < points.length - 1; i++) {
      const p = points[i];
      const next = points[i + 1];
      d += ` Q${p.x},${p.y} ${(p.x + next.x) / 2},${(p.y + next.y) / 2}`;
    }
    const last = points[points.length - 1];
    return d + ` L${last.x},${last.y}`;
  }

  function draw() {
    const g = layout();
    const graph = g.graph();
    canvas.replaceChildren();
    canvas.setAttribute("width", Math.ceil(graph.width || 200));
    canvas.setAttribute("height", Math.ceil(graph.height || 100));
    canvas.setAttribute("viewBox", `0 0 ${Math.ceil(graph.width || 200)} ${Math.ceil(graph.height || 100)}`);
    canvas.append(
      svg("defs", {}, [
        svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, [
          svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }),
        ]),
      ]),
    );
    // groups first (outer before inner), so that tasks and edges are drawn above them
    const groups = data.groups
      .map((group) => ({ group, box: g.node("group:" + group.group_id) }))
      .filter((x) => x.box && x.box.width)
      .sort((a, b) => b.box.width * b.box.height - a.box.width * a.box.height);
    for (const { group, box } of groups) {
      canvas.append(
        svg("g", { class: "group", "data-group-id": group.group_id }, [
          svg("rect", { x: box.x - box.width / 2, y: box.y - box.height / 2, width: box.width, height: box.height, rx: 8 }),
          svg("text", { x: box.x - box.width / 2 + 8, y: box.y - box.height / 2 + 14 }, [group.label || group.group_id]),
          group.tooltip ? svg("title", {}, [group.tooltip]) : null,
        ]),
      );
    }
    for (const e of g.edges()) {
      const edge = g.edge(e);
      if (!edge.points || !edge.points.length) continue;
      canvas.append(svg("path", { class: "edge", d: pathOf(edge.points), "marker-end": "url(#arrow)", "data-edge": e.v + "→" + e.w }));
    }
    for (const node of data.nodes) {
      const box = g.node(node.id);
      const shape = [
        svg("rect", { class: "box", width: box.width, height: box.height, rx: 7 }),
        svg("rect", { class: "stripe", x: 2, y: 2, width: 6, height: box.height - 4, rx: 3 }),
        svg("text", { x: 15, y: 17 }, [node.label]),
        svg("text", { x: 15, y: 32, class: "op" }, [node.operator || ""]),
      ];
      const body = node.url ? svg("a", { href: node.url }, shape) : svg("g", {}, shape);
      canvas.append(
        svg("g", {
          class: "node",
          transform: `translate(${box.x - box.width / 2},${box.y - box.height / 2})`,
          "data-task-id": node.id,
          "data-state": node.state || "none",
        }, [svg("title", {}, [`${node.id} · ${node.state || "no state"}`]), body]),
      );
    }
  }

  function update(fresh) {
    for (const node of fresh.nodes) {
      const g = canvas.querySelector(`g.node[data-task-id="${CSS.escape(node.id)}"]`);
      if (!g) continue;
      g.dataset.state = node.state || "none";
      g.querySelector("title").textContent = `${node.id} · ${node.state || "no state"}`;
    }
    const badge = document.querySelector("#graph-run-state .state");
    if (badge && fresh.run_state) {
      slipstream.setState(badge, fresh.run_state);
      badge.textContent = fresh.run_state.replace(/_/g, " ");
    }
    canvas.dataset.live = String(Boolean(fresh.live));
    const note = document.getElementById("graph-live");
    if (note) note.hidden = !fresh.live;
  }

  draw();
  const select = document.getElementById("graph-run");
  if (select) select.addEventListener("change", () => select.form.submit());
  if (canvas.dataset.live === "true") {
    slipstream.poll(async () => update(await slipstream.ui(canvas.dataset.source)), () => canvas.dataset.live === "true", { immediate: false });
  }
})();
