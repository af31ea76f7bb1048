"""A project's name is judged blank by the app as by the sync server (rules.json class_name.blank, through
features/dataset/names.js isBlankName). Before, the app judged with String.prototype.trim, which keeps U+001C,
and the server with str.strip(), which drops it: a project named "\x1c" was made here and refused on every push."""

from __future__ import annotations


def test_project_names_follow_the_servers_blank_rule(app):
    result = app.evaluate("""async () => {
      const t = await import('/tejas.js');
      const fail = (promise) => promise.then(() => null, (error) => error.message);
      const kept = await t.createProject(' Pets\\u001c ');
      return {
        separator: await fail(t.createProject('\\u001c')),
        invisible: await fail(t.createProject('\\u200b\\u00a0')),
        renamed: await fail(t.renameProject(kept.id, '\\ufeff')),
        kept: (await t.listProjects()).map((p) => p.name),
      };
    }""")
    refused = "A project needs a name."
    assert result == {"separator": refused, "invisible": refused, "renamed": refused, "kept": ["Pets\x1c"]}
