"""Renders the synthetic scene generator's heavy-vehicle sprites (and two extra cars) with Blender.

Run (Debian `blender` 3.4.1; nothing in the build needs it, the PNGs are committed):

    blender -b -P render_sprites.py -- OUTDIR [NAME ...]

Every model is built procedurally here (no downloaded assets): a side profile extruded across the
vehicle's width with wheel arches cut into it, side glazing, door seams, handles, bumpers, lights,
mirrors, wheels with tyres and hubs, liveries. Each is rendered with Cycles (few samples, CPU)
by an orthographic camera looking at the vehicle's left side (front to the right, +x), a few
degrees from above as a pole camera sees it, onto a transparent background. The image is then
cropped so that:

- its left and right edges are exactly the vehicle's rear and front ends (the model's overall
  length maps to an integer number of pixels, placed on pixel boundaries);
- its bottom edge is the lowest row where the near tyres cover at least half a pixel (the ground
  contact line).

The script prints one line per sprite with its pixel size and metric size (length, vehicle height,
and the drawn image height in metres); `sprite.rs` carries these numbers. If `pngquant` is on the
PATH the PNGs are reduced to a 256-colour palette (with alpha) to keep the embedded assets small.
"""

import math
import os
import shutil
import subprocess
import sys

import bpy
import bmesh

# Camera elevation above the horizontal (deg): a pole camera sees vehicles a little from above.
ELEVATION_DEG = float(os.environ.get("SPRITE_ELEVATION_DEG", "10"))
# Render the shadow the vehicle casts on the road under itself into the sprite (partial alpha).
SHADOW = os.environ.get("SPRITE_SHADOW", "1") == "1"
# Sprite width (px) along the vehicle's length.
SPRITE_WIDTH_PX = 440
# Empty pixels left and right of the vehicle in the raw render.
MARGIN_PX = 12

# ---------------------------------------------------------------------------------------------
# Scene helpers


def reset_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 32
    scene.cycles.use_adaptive_sampling = True
    scene.cycles.max_bounces = 4
    scene.cycles.use_denoising = False
    scene.render.film_transparent = True
    scene.render.filter_size = 1.2
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"
    scene.render.threads_mode = "AUTO"
    world = bpy.data.worlds.new("sky")
    scene.world = world
    world.use_nodes = True
    # An environment for the paint and glass to reflect: bright sky above the horizon, a darker
    # grey-brown ground below it, a soft horizon band (the "horizon line" real cars show).
    nodes, links = world.node_tree.nodes, world.node_tree.links
    bg = nodes["Background"]
    coord = nodes.new("ShaderNodeTexCoord")
    sep = nodes.new("ShaderNodeSeparateXYZ")
    ramp = nodes.new("ShaderNodeValToRGB")
    links.new(coord.outputs["Generated"], sep.inputs["Vector"])
    links.new(sep.outputs["Z"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bg.inputs["Color"])
    # Fac is the view direction's z in -1..1 clamped to 0..1: ground for z < 0 (Fac 0).
    els = ramp.color_ramp.elements
    els[0].position = 0.0
    els[0].color = (*srgb_to_linear((70, 66, 60)), 1.0)
    els[1].position = 0.05
    els[1].color = (*srgb_to_linear((215, 222, 230)), 1.0)
    top = els.new(0.6)
    top.color = (*srgb_to_linear((120, 160, 215)), 1.0)
    bg.inputs["Strength"].default_value = 1.0
    sun_data = bpy.data.lights.new("sun", type="SUN")
    sun_data.energy = 3.2
    sun_data.angle = math.radians(8.0)
    sun = bpy.data.objects.new("sun", sun_data)
    # From above, in front of the visible (-y) side, a bit from the front.
    sun.rotation_euler = (math.radians(50.0), 0.0, math.radians(-30.0))
    scene.collection.objects.link(sun)
    return scene


def shadow_catcher():
    """A ground plane that shows only the shadow the vehicle casts on it (the dark road under the
    body, between the wheels), as partial alpha over a transparent background."""
    mesh = bpy.data.meshes.new("ground")
    bm = bmesh.new()
    vs = [bm.verts.new((x, y, 0.0)) for (x, y) in [(-30, -30), (60, -30), (60, 30), (-30, 30)]]
    bm.faces.new(vs)
    bm.to_mesh(mesh)
    bm.free()
    obj = bpy.data.objects.new("ground", mesh)
    obj.is_shadow_catcher = True
    bpy.context.scene.collection.objects.link(obj)
    return obj


_MATS = {}


def mat(name, rgb, metallic=0.0, roughness=0.5, emission=None, clearcoat=0.0):
    key = (name, tuple(rgb), metallic, roughness, emission, clearcoat)
    if key in _MATS:
        return _MATS[key]
    m = bpy.data.materials.new(name)
    m.use_nodes = True
    p = m.node_tree.nodes["Principled BSDF"]
    p.inputs["Base Color"].default_value = (*srgb_to_linear(rgb), 1.0)
    p.inputs["Metallic"].default_value = metallic
    p.inputs["Roughness"].default_value = roughness
    p.inputs["Clearcoat"].default_value = clearcoat
    if emission is not None:
        p.inputs["Emission"].default_value = (*srgb_to_linear(emission[0]), 1.0)
        p.inputs["Emission Strength"].default_value = emission[1]
    _MATS[key] = m
    return m


def srgb_to_linear(rgb):
    def f(c):
        c = c / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    return tuple(f(c) for c in rgb)


def link(obj, material, bevel=0.0, segments=2):
    obj.data.materials.append(material)
    if bevel > 0.0:
        mod = obj.modifiers.new("bevel", "BEVEL")
        mod.width = bevel
        mod.segments = segments
        mod.limit_method = "ANGLE"
        mod.angle_limit = math.radians(35.0)
    for poly in obj.data.polygons:
        poly.use_smooth = False
    bpy.context.scene.collection.objects.link(obj)
    return obj


def box(name, x0, x1, y0, y1, z0, z1, material, bevel=0.0):
    """Axis-aligned box with corners (x0, y0, z0) and (x1, y1, z1)."""
    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    vs = [
        bm.verts.new((x, y, z))
        for (x, y, z) in [
            (x0, y0, z0),
            (x1, y0, z0),
            (x1, y1, z0),
            (x0, y1, z0),
            (x0, y0, z1),
            (x1, y0, z1),
            (x1, y1, z1),
            (x0, y1, z1),
        ]
    ]
    for f in [(0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)]:
        bm.faces.new([vs[i] for i in f])
    bm.to_mesh(mesh)
    bm.free()
    return link(bpy.data.objects.new(name, mesh), material, bevel)


def prism(name, profile_xz, y0, y1, material, bevel=0.0, segments=2):
    """Extrudes a side profile (x, z polygon, counter-clockwise seen from -y) from y0 to y1."""
    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    near = [bm.verts.new((x, y0, z)) for (x, z) in profile_xz]
    far = [bm.verts.new((x, y1, z)) for (x, z) in profile_xz]
    n = len(profile_xz)
    bm.faces.new(near)
    bm.faces.new(list(reversed(far)))
    for i in range(n):
        j = (i + 1) % n
        bm.faces.new([near[i], near[j], far[j], far[i]])
    bmesh.ops.recalc_face_normals(bm, faces=bm.faces)
    bm.to_mesh(mesh)
    bm.free()
    return link(bpy.data.objects.new(name, mesh), material, bevel, segments)


def cylinder_y(name, x, z, radius, y0, y1, material, verts=40, bevel=0.0):
    """Cylinder with its axis along y (a wheel part)."""
    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    ring0, ring1 = [], []
    for k in range(verts):
        a = 2.0 * math.pi * k / verts
        cx, cz = x + radius * math.cos(a), z + radius * math.sin(a)
        ring0.append(bm.verts.new((cx, y0, cz)))
        ring1.append(bm.verts.new((cx, y1, cz)))
    bm.faces.new(ring0)
    bm.faces.new(list(reversed(ring1)))
    for k in range(verts):
        j = (k + 1) % verts
        bm.faces.new([ring0[k], ring0[j], ring1[j], ring1[k]])
    bmesh.ops.recalc_face_normals(bm, faces=bm.faces)
    bm.to_mesh(mesh)
    bm.free()
    obj = link(bpy.data.objects.new(name, mesh), material, bevel)
    for poly in obj.data.polygons:
        poly.use_smooth = True
    return obj


def cylinder_x(name, y, z, radius, x0, x1, material, verts=40):
    """Cylinder with its axis along x (a tank)."""
    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    ring0, ring1 = [], []
    for k in range(verts):
        a = 2.0 * math.pi * k / verts
        cy, cz = y + radius * math.cos(a), z + radius * math.sin(a)
        ring0.append(bm.verts.new((x0, cy, cz)))
        ring1.append(bm.verts.new((x1, cy, cz)))
    bm.faces.new(ring0)
    bm.faces.new(list(reversed(ring1)))
    for k in range(verts):
        j = (k + 1) % verts
        bm.faces.new([ring0[k], ring0[j], ring1[j], ring1[k]])
    bmesh.ops.recalc_face_normals(bm, faces=bm.faces)
    bm.to_mesh(mesh)
    bm.free()
    obj = link(bpy.data.objects.new(name, mesh), material, 0.0)
    for poly in obj.data.polygons:
        poly.use_smooth = True
    return obj


def arch_bottom(x_start, x_end, clearance, wheels, radius, gap=0.06, steps=10):
    """Bottom edge of a body profile from x_start to x_end (left to right) at z = clearance, with
    a semicircular arch of radius `radius + gap` over each wheel at x in `wheels`."""
    pts = [(x_start, clearance)]
    big = radius + gap
    for xw in sorted(wheels):
        s = (clearance - radius) / big
        s = max(-1.0, min(1.0, s))
        t0 = math.asin(s)
        for k in range(steps + 1):
            t = (math.pi - t0) + (2.0 * t0 - math.pi) * k / steps
            pts.append((xw + big * math.cos(t), radius + big * math.sin(t)))
    pts.append((x_end, clearance))
    return pts


# ---------------------------------------------------------------------------------------------
# Parts shared by the vehicles


class Vehicle:
    """Collects what the renderer needs about a built model."""

    def __init__(self, name, length, width, height):
        self.name = name
        self.length = length
        self.width = width
        self.height = height


def wheel(x, radius, width, body_half_w, tyre_w, hub_rgb=(190, 192, 196), twin=False, dished=False):
    """A wheel on each side: tyre, rim, hub, arch shadow behind it. Only the near (-y) side is
    seen but both are built so the elevated view of the underside looks right."""
    tyre = mat("tyre", (22, 22, 24), roughness=0.85)
    rim = mat("rim", hub_rgb, metallic=0.8, roughness=0.3)
    hub = mat("hub", (60, 62, 66), metallic=0.5, roughness=0.4)
    well = mat("well", (14, 14, 16), roughness=1.0)
    for side in (-1.0, 1.0):
        outer = side * (body_half_w - 0.02)
        inner = outer - side * tyre_w
        y0, y1 = sorted((outer, inner))
        cylinder_y("tyre", x, radius, radius, y0, y1, tyre, bevel=0.05)
        # Rim face, slightly proud of the tyre's sidewall on the outer side.
        rim_r = radius * (0.62 if not dished else 0.55)
        face = outer + side * 0.005
        ry0, ry1 = sorted((face, face - side * 0.03))
        cylinder_y("rim", x, radius, rim_r, ry0, ry1, rim)
        hy0, hy1 = sorted((face + side * 0.008, face - side * 0.01))
        cylinder_y("hub", x, radius, rim_r * 0.35, hy0, hy1, hub)
        # Wheel nuts/spokes: dark holes on the rim.
        for k in range(6 if not twin else 8):
            a = 2.0 * math.pi * k / (6 if not twin else 8)
            cx, cz = x + rim_r * 0.66 * math.cos(a), radius + rim_r * 0.66 * math.sin(a)
            ny0, ny1 = sorted((face + side * 0.004, face - side * 0.01))
            cylinder_y("hole", cx, cz, rim_r * 0.14, ny0, ny1, hub, verts=12)
    # Dark wheel well behind the wheel, across the body.
    cylinder_y("well", x, radius, radius + 0.05, -body_half_w + 0.12, body_half_w - 0.12, well)


def glass():
    return mat("glass", (48, 62, 76), metallic=0.2, roughness=0.12, clearcoat=1.0)


def side_slab(name, profile_xz, body_half_w, material, proud=0.006, thick=0.01):
    """A thin plate on both body sides following a side profile (windows, stripes, doors)."""
    for side in (-1.0, 1.0):
        y_out = side * (body_half_w + proud)
        y_in = y_out - side * thick
        y0, y1 = sorted((y_out, y_in))
        prism(name, profile_xz, y0, y1, material)


def rect(x0, x1, z0, z1):
    return [(x0, z0), (x1, z0), (x1, z1), (x0, z1)]


def seam(x, z0, z1, body_half_w, width=0.014):
    """A vertical door seam (dark line) on both sides."""
    side_slab("seam", rect(x - width / 2, x + width / 2, z0, z1), body_half_w,
              mat("seam", (20, 20, 22), roughness=0.7), proud=0.008, thick=0.006)


def handle(x, z, body_half_w, rgb=(70, 72, 76)):
    side_slab("handle", rect(x - 0.12, x + 0.04, z - 0.025, z + 0.025), body_half_w,
              mat("handle", rgb, metallic=0.6, roughness=0.3), proud=0.02, thick=0.02)


def mirror(x, z, body_half_w, arm=0.2, size=(0.12, 0.22), rgb=(25, 25, 28)):
    m = mat("mirror", rgb, roughness=0.4)
    for side in (-1.0, 1.0):
        y_body = side * body_half_w
        y_tip = side * (body_half_w + arm)
        y0, y1 = sorted((y_body, y_tip))
        box("mirror_arm", x - 0.02, x + 0.02, y0, y1, z - 0.02, z + 0.02, m)
        y0, y1 = sorted((y_tip, y_tip - side * 0.06))
        box("mirror", x - size[0] / 2, x + size[0] / 2, y0, y1, z - size[1] / 2, z + size[1] / 2,
            m, bevel=0.02)


def lights(length, width, head_z, tail_z, head_h=0.14, tail_h=0.22, head_len=0.25):
    """Headlights at the front corners, tail lights at the rear corners (wrapping the side)."""
    head = mat("headlight", (235, 235, 225), roughness=0.1, emission=((255, 250, 235), 0.6))
    tail = mat("taillight", (170, 20, 18), roughness=0.2, emission=((200, 20, 10), 0.4))
    amber = mat("indicator", (230, 140, 20), roughness=0.2)
    hw = width / 2
    for side in (-1.0, 1.0):
        y0, y1 = sorted((side * (hw + 0.004), side * (hw - 0.3)))
        box("head", length - head_len, length, y0, y1, head_z, head_z + head_h, head)
        box("ind", length - head_len - 0.06, length - head_len, y0, y1, head_z, head_z + head_h,
            amber)
        box("tail", 0.0, 0.12, y0, y1, tail_z, tail_z + tail_h, tail)


def bumper(x0, x1, z0, z1, width, rgb=(40, 40, 44)):
    box("bumper", x0, x1, -width / 2 - 0.01, width / 2 + 0.01, z0, z1,
        mat("bumper", rgb, roughness=0.6), bevel=0.03)


# ---------------------------------------------------------------------------------------------
# The vehicles. Each builds its model with the rear at x = 0, the front at x = length, the
# centre line at y = 0 and the tyres on z = 0, and returns a Vehicle.


def city_bus(body_rgb=(200, 30, 30), skirt_rgb=(40, 40, 44), roof_rgb=(235, 235, 235)):
    L, W, H = 12.0, 2.55, 3.2
    r, clear = 0.5, 0.32
    wheels = [2.9, 9.15]  # rear axle, front axle (front overhang ~2.85 m)
    body_x0, body_x1 = 0.05, L - 0.05
    bottom = arch_bottom(body_x0, body_x1, clear, wheels, r, gap=0.08)
    top = [(body_x1, clear), (body_x1, 0.9), (L - 0.02, 1.1), (L - 0.02, H - 0.25), (L - 0.25, H),
           (0.2, H), (0.02, H - 0.2), (0.02, 0.9), (body_x0, clear)]
    profile = bottom + top[1:-1]
    body = mat("paint", body_rgb, roughness=0.35, clearcoat=0.4)
    prism("body", profile, -W / 2, W / 2, body, bevel=0.06)
    # Roof pod (air conditioning) and a light roof.
    box("roof", 0.3, L - 0.4, -W / 2 + 0.05, W / 2 - 0.05, H - 0.04, H + 0.01,
        mat("roofpaint", roof_rgb, roughness=0.5))
    box("aircon", 6.5, 9.5, -0.9, 0.9, H, H + 0.22, mat("roofpaint", roof_rgb, roughness=0.5),
        bevel=0.06)
    # Window band: big panes with pillars, the front door glazed to near the floor.
    g = glass()
    side_slab("windowband", rect(0.35, L - 0.1, 1.2, H - 0.25), W / 2, g)
    # Body-coloured pillars between the panes: a row of separate windows, as buses have.
    for xp in [0.35, 1.75, 3.15, 4.55, 7.0, 8.4, 9.8, L - 1.45]:
        side_slab("pillar", rect(xp - 0.1, xp + 0.1, 1.15, H - 0.2), W / 2, body,
                  proud=0.012, thick=0.01)
    side_slab("sill", rect(0.1, L - 0.1, 1.12, 1.2), W / 2, body, proud=0.012, thick=0.01)
    # Doors: front (ahead of the front axle) and middle, glazed, with seams.
    for (d0, d1) in [(L - 1.45, L - 0.3), (5.0, 6.25)]:
        side_slab("doorglass", rect(d0, d1, 0.45, H - 0.3), W / 2, g, proud=0.014)
        seam(d0, 0.4, H - 0.28, W / 2)
        seam(d1, 0.4, H - 0.28, W / 2)
        seam((d0 + d1) / 2, 0.4, H - 0.28, W / 2, width=0.02)
    # Livery stripe and dark skirt.
    stripe = mat("stripe", (250, 200, 40), roughness=0.4)
    side_slab("stripe", rect(0.1, 5.0, 0.95, 1.1), W / 2, stripe)
    side_slab("stripe", rect(6.25, L - 1.45, 0.95, 1.1), W / 2, stripe)
    side_slab("skirt", rect(0.1, 2.2, clear, 0.5), W / 2, mat("skirt", skirt_rgb, roughness=0.6))
    side_slab("skirt", rect(3.6, 8.45, clear, 0.5), W / 2, mat("skirt", skirt_rgb, roughness=0.6))
    # Destination display at the front top.
    box("dest", L - 0.06, L + 0.0, -0.9, 0.9, H - 0.45, H - 0.15,
        mat("dest", (20, 20, 20), emission=((255, 170, 30), 0.8)))
    bumper(L - 0.06, L, 0.3, 0.55, W)
    bumper(0.0, 0.06, 0.3, 0.55, W)
    lights(L, W, 0.6, 0.6, head_h=0.16, tail_h=0.35, head_len=0.1)
    mirror(L - 0.25, H - 0.5, W / 2, arm=0.35, size=(0.15, 0.35))
    for xw in wheels:
        wheel(xw, r, 0.3, W / 2, 0.3, dished=True)
    return Vehicle("bus_city", L, W, H + 0.22)


def box_lorry(cab_rgb=(240, 240, 240), box_rgb=(250, 250, 250), band_rgb=(20, 90, 170)):
    L, W = 8.6, 2.5
    H = 3.5
    r = 0.48
    wheels = [2.2, 7.0]
    hw = W / 2
    paint = mat("cabpaint", cab_rgb, roughness=0.35, clearcoat=0.4)
    # Cab (front 2.1 m): a tall box with a sloped windscreen.
    cab_x0 = L - 2.15
    cab_bottom = arch_bottom(cab_x0, L - 0.05, 0.55, [wheels[1]], r, gap=0.08)
    cab = cab_bottom + [(L - 0.05, 1.2), (L, 1.35), (L - 0.08, 2.35), (L - 0.3, 2.75),
                        (cab_x0 + 0.1, 2.8), (cab_x0, 2.7)]
    prism("cab", cab, -hw + 0.02, hw - 0.02, paint, bevel=0.06)
    g = glass()
    # Door window and a small quarter window, door seams and step.
    side_slab("cabwin", [(cab_x0 + 0.95, 1.75), (L - 0.3, 1.75), (L - 0.2, 2.55),
                         (cab_x0 + 0.95, 2.6)], hw - 0.02, g)
    side_slab("cabwin2", rect(cab_x0 + 0.15, cab_x0 + 0.75, 1.9, 2.55), hw - 0.02, g)
    seam(cab_x0 + 0.85, 0.7, 2.65, hw - 0.02)
    seam(L - 0.2, 0.7, 1.7, hw - 0.02)
    handle(cab_x0 + 1.15, 1.55, hw - 0.02)
    side_slab("step", rect(cab_x0 + 0.9, L - 0.9, 0.45, 0.6), hw - 0.02,
              mat("step", (50, 50, 55), roughness=0.5), proud=0.03)
    # Windscreen face (seen at the front edge) and spoiler above the cab.
    box("windscreen", L - 0.12, L - 0.02, -hw + 0.1, hw - 0.1, 1.55, 2.5, g)
    box("spoiler", cab_x0 + 0.3, L - 0.4, -hw + 0.1, hw - 0.1, 2.78, 3.05, paint, bevel=0.08)
    # Grille and bumper.
    box("grille", L - 0.04, L + 0.0, -0.8, 0.8, 0.75, 1.25, mat("grille", (30, 30, 32)))
    bumper(L - 0.2, L, 0.35, 0.75, W, rgb=(60, 60, 64))
    mirror(L - 0.15, 2.1, hw, arm=0.3, size=(0.12, 0.4))
    # Chassis, fuel tank, side guard.
    dark = mat("chassis", (30, 30, 32), roughness=0.7)
    box("chassis", 0.2, cab_x0 + 0.2, -0.55, 0.55, 0.55, 0.85, dark)
    box("tank", 3.2, 4.4, -hw + 0.1, -hw + 0.6, 0.5, 1.0, mat("tank", (170, 172, 176),
        metallic=0.8, roughness=0.3), bevel=0.05)
    for z in (0.55, 0.8):
        box("guard", 2.85, 6.25, -hw - 0.005, -hw + 0.04, z, z + 0.06,
            mat("guardrail", (160, 160, 165), metallic=0.5, roughness=0.4))
    # Box body with a coloured band, rear doors, marker lamps, corner posts.
    bx0, bx1, bz0 = 0.0, cab_x0 - 0.1, 0.95
    body = mat("box", box_rgb, roughness=0.5)
    box("box", bx0, bx1, -hw, hw, bz0, H, body, bevel=0.03)
    side_slab("band", rect(bx0 + 0.1, bx1 - 0.1, 2.0, 2.5), hw,
              mat("band", band_rgb, roughness=0.4))
    side_slab("band2", rect(bx0 + 0.1, bx1 - 0.1, 1.75, 1.85), hw,
              mat("band", band_rgb, roughness=0.4))
    post = mat("post", (150, 152, 156), metallic=0.6, roughness=0.35)
    for xp in (bx0 + 0.045, bx1 - 0.045):
        side_slab("post", rect(xp - 0.04, xp + 0.04, bz0, H), hw, post, proud=0.01)
    side_slab("rail", rect(bx0, bx1, bz0, bz0 + 0.08), hw, post, proud=0.01)
    side_slab("rail", rect(bx0, bx1, H - 0.08, H), hw, post, proud=0.01)
    amber = mat("marker", (240, 150, 20), roughness=0.2, emission=((255, 150, 20), 0.5))
    for xm in (1.0, 2.9, 4.8):
        side_slab("marker", rect(xm - 0.05, xm + 0.05, bz0 + 0.1, bz0 + 0.16), hw, amber,
                  proud=0.02)
    lights(L, W, 0.8, 0.5, head_h=0.15, tail_h=0.2, head_len=0.12)
    for xw, twin in ((wheels[0], True), (wheels[1], False)):
        wheel(xw, r, 0.32, hw, 0.32 if not twin else 0.55, twin=twin)
    return Vehicle("lorry_box", L, W, H)


def panel_van(body_rgb=(245, 245, 245), stripe_rgb=None, windows_rear=False, name="van_panel",
              L=5.3, H=2.3, W=2.0, roof_step=0.0):
    r, clear = 0.35, 0.28
    wf = L - 1.05
    wheels = [1.25, wf] if L < 5.8 else [1.35, wf]
    hw = W / 2
    paint = mat("vanpaint", body_rgb, roughness=0.3, clearcoat=0.5)
    bottom = arch_bottom(0.03, L - 0.03, clear, wheels, r, gap=0.05)
    top = [(L - 0.03, clear), (L - 0.02, 0.55), (L, 0.85), (L - 0.45, 1.05), (L - 0.9, 1.2),
           (L - 1.55, 1.95), (L - 1.85, H - 0.02 - roof_step), (L - 2.05, H - roof_step),
           (0.15, H), (0.03, H - 0.12), (0.02, 0.55)]
    if roof_step > 0.0:
        top = top[:7] + [(L - 2.05, H - roof_step), (L - 2.3, H), (0.15, H), (0.03, H - 0.12),
                         (0.02, 0.55)]
    prism("body", bottom + top[1:], -hw, hw, paint, bevel=0.05, segments=3)
    g = glass()
    # Cab side window, windscreen (visible as a sloped band from the side), A pillar.
    side_slab("cabwin", [(L - 2.05, 1.3), (L - 1.2, 1.3), (L - 1.62, 1.88),
                         (L - 2.05, 1.95)], hw, g)
    box("windscreen", L - 1.6, L - 0.95, -hw + 0.12, hw - 0.12, 1.2, 1.92, g)
    # Windscreen glass following the slope: a rotated thin box is simpler as a prism.
    prism("screen", [(L - 0.93, 1.21), (L - 1.55, 1.96), (L - 1.6, 1.94), (L - 0.98, 1.19)],
          -hw + 0.08, hw - 0.08, g)
    seam(L - 2.1, 0.35, H - 0.1 - roof_step, hw)
    seam(L - 1.15, 0.4, 1.25, hw)
    handle(L - 1.95, 1.1, hw)
    # Sliding side door seam and rail; rear windows for a minibus.
    seam(L - 3.1, 0.35, H - 0.15, hw)
    side_slab("rail", rect(0.4, L - 3.1, 1.28, 1.31), hw, mat("seam", (20, 20, 22)),
              proud=0.008)
    if windows_rear:
        for (a, b) in [(L - 3.05, L - 2.15), (L - 4.1, L - 3.15), (0.3, L - 4.2)]:
            if b - a > 0.3:
                side_slab("win", rect(a, b, 1.35, H - 0.3), hw, g)
    else:
        side_slab("win", rect(L - 3.05, L - 2.2, 1.35, H - 0.35), hw, g)
        handle(L - 3.25, 1.1, hw)
    if stripe_rgb is not None:
        side_slab("stripe", rect(0.05, L - 1.0, 0.78, 0.98), hw,
                  mat("stripe", stripe_rgb, roughness=0.4))
    # Dark lower cladding, bumpers, lights, mirrors.
    clad = mat("clad", (55, 56, 60), roughness=0.7)
    side_slab("clad", [(w, z) for (w, z) in rect(0.2, L - 0.2, clear, 0.42)], hw, clad,
              proud=0.004)
    bumper(L - 0.18, L + 0.0, 0.3, 0.58, W, rgb=(50, 50, 54))
    bumper(0.0, 0.16, 0.3, 0.55, W, rgb=(50, 50, 54))
    box("grille", L - 0.03, L + 0.0, -0.6, 0.6, 0.6, 0.85, mat("grille", (25, 25, 28)))
    lights(L, W, 0.82, 0.75, head_h=0.16, tail_h=0.45, head_len=0.3)
    mirror(L - 1.55, 1.55, hw, arm=0.18, size=(0.1, 0.25))
    for xw in wheels:
        wheel(xw, r, 0.23, hw, 0.23)
    return Vehicle(name, L, W, H)


def car(name="car_hatch", body_rgb=(30, 70, 150), L=4.1, W=1.75, H=1.48, estate=False):
    r, clear = 0.31, 0.17
    wheels = [0.75, L - 0.85] if not estate else [0.95, L - 0.9]
    hw = W / 2
    paint = mat("carpaint", body_rgb, metallic=0.4, roughness=0.25, clearcoat=1.0)
    bottom = arch_bottom(0.04, L - 0.04, clear, wheels, r, gap=0.04)
    if estate:
        top = [(L - 0.04, clear), (L - 0.01, 0.45), (L, 0.66), (L - 0.2, 0.78), (L - 1.15, 0.92),
               (L - 1.9, H - 0.02), (L - 2.15, H), (0.3, H - 0.03), (0.08, H - 0.1),
               (0.02, 0.85), (0.0, 0.45)]
    else:
        top = [(L - 0.04, clear), (L - 0.01, 0.45), (L, 0.66), (L - 0.18, 0.78), (L - 0.95, 0.9),
               (L - 1.65, H - 0.02), (L - 1.95, H), (0.55, H - 0.03), (0.12, H - 0.3),
               (0.03, 0.92), (0.0, 0.45)]
    prism("body", bottom + top[1:], -hw, hw, paint, bevel=0.07, segments=3)
    g = glass()
    # Greenhouse: one glazed band split by a B pillar.
    if estate:
        win = [(L - 1.18, 0.97), (0.18, 0.97), (0.17, H - 0.14), (0.35, H - 0.08),
               (L - 2.1, H - 0.06), (L - 1.85, H - 0.09)]
    else:
        win = [(L - 0.98, 0.95), (0.3, 0.95), (0.3, 1.02), (0.55, H - 0.1), (L - 1.9, H - 0.07),
               (L - 1.68, H - 0.1)]
    side_slab("glass", win, hw, g)
    pill = mat("pillar", (20, 20, 22), roughness=0.5)
    xb = L - 2.2 if not estate else L - 2.35
    side_slab("bpillar", rect(xb - 0.05, xb + 0.05, 0.95, H - 0.05), hw, pill,
              proud=0.012)
    if estate:
        side_slab("cpillar", rect(1.05, 1.15, 0.95, H - 0.05), hw, pill, proud=0.012)
    # Door seams and handles.
    seam(L - 1.15, 0.28, 0.95, hw)
    seam(xb, 0.25, 0.95, hw)
    seam(xb - 1.0, 0.3, 0.95, hw) if not estate else seam(xb - 1.05, 0.3, 0.95, hw)
    handle(xb - 0.15, 0.85, hw, rgb=(150, 152, 156))
    handle(xb - 1.15, 0.85, hw, rgb=(150, 152, 156))
    clad = mat("sill", (35, 36, 40), roughness=0.7)
    side_slab("sill", rect(wheels[0] + r + 0.05, wheels[1] - r - 0.05, clear, 0.28), hw, clad)
    bumper(L - 0.12, L, 0.22, 0.48, W - 0.02, rgb=tuple(int(c * 0.9) for c in body_rgb))
    bumper(0.0, 0.12, 0.22, 0.48, W - 0.02, rgb=tuple(int(c * 0.9) for c in body_rgb))
    lights(L, W, 0.62, 0.7, head_h=0.12, tail_h=0.14, head_len=0.35)
    mirror(L - 1.7, 0.98, hw, arm=0.12, size=(0.18, 0.12), rgb=body_rgb)
    for xw in wheels:
        wheel(xw, r, 0.2, hw, 0.2)
    return Vehicle(name, L, W, H)


def coach(body_rgb=(240, 240, 240), band_rgb=(0, 120, 110)):
    L, W, H = 12.4, 2.55, 3.6
    r, clear = 0.52, 0.35
    wheels = [2.75, 3.95, 9.95]  # tandem rear axle, front axle
    hw = W / 2
    paint = mat("coachpaint", body_rgb, roughness=0.3, clearcoat=0.6)
    bottom = arch_bottom(0.05, L - 0.05, clear, wheels, r, gap=0.07)
    top = [(L - 0.05, clear), (L, 0.75), (L - 0.05, 1.5), (L - 0.25, H - 0.4), (L - 0.75, H),
           (0.35, H), (0.05, H - 0.3), (0.0, 0.75)]
    prism("body", bottom + top[1:], -hw, hw, paint, bevel=0.08, segments=3)
    g = glass()
    # A tall continuous band of tinted glass that rises to the front, luggage bays below.
    side_slab("glass", [(0.5, 2.0), (L - 1.3, 2.0), (L - 0.6, 1.6), (L - 0.3, H - 0.4),
                        (L - 0.8, H - 0.12), (0.5, H - 0.2)], hw, g)
    pill = mat("pillar", (20, 20, 22), roughness=0.5)
    for xp in [2.0, 3.6, 5.2, 6.8, 8.4, 10.0]:
        side_slab("pillar", rect(xp - 0.04, xp + 0.04, 2.0, H - 0.2), hw, pill, proud=0.012)
    band = mat("band", band_rgb, roughness=0.35)
    side_slab("band", [(0.05, 1.55), (L - 1.3, 1.55), (L - 1.1, 1.9), (0.05, 1.9)], hw, band)
    side_slab("swoosh", [(4.0, 0.5), (7.5, 0.5), (9.0, 1.5), (6.5, 1.5)], hw,
              mat("band2", (240, 170, 0), roughness=0.35), proud=0.008)
    for (a, b) in [(0.6, 2.15), (4.6, 6.2), (6.3, 7.9), (8.0, 9.35)]:
        seam(a, 0.5, 1.45, hw)
        seam(b, 0.5, 1.45, hw)
        side_slab("bayline", rect(a, b, 1.42, 1.45), hw, mat("seam", (20, 20, 22)), proud=0.009)
    # Front door just behind the front overhang.
    side_slab("door", rect(L - 1.25, L - 0.35, 0.45, H - 0.5), hw, g, proud=0.014)
    seam(L - 1.25, 0.4, H - 0.45, hw)
    seam(L - 0.35, 0.4, H - 0.45, hw)
    bumper(L - 0.1, L, 0.35, 0.7, W, rgb=(60, 60, 64))
    bumper(0.0, 0.1, 0.35, 0.7, W, rgb=(60, 60, 64))
    lights(L, W, 0.75, 0.9, head_h=0.18, tail_h=0.5, head_len=0.12)
    mirror(L - 0.3, H - 0.5, hw, arm=0.4, size=(0.18, 0.4))
    for xw in wheels:
        wheel(xw, r, 0.3, hw, 0.3, hub_rgb=(205, 205, 210))
    return Vehicle("coach", L, W, H)


def tanker(cab_rgb=(200, 40, 30), tank_rgb=(205, 208, 212)):
    L, W = 9.2, 2.5
    r = 0.5
    wheels = [1.85, 3.2, 7.6]
    hw = W / 2
    paint = mat("cabpaint", cab_rgb, roughness=0.3, clearcoat=0.5)
    cab_x0 = L - 2.3
    cab_bottom = arch_bottom(cab_x0, L - 0.05, 0.6, [wheels[2]], r, gap=0.08)
    cab = cab_bottom + [(L - 0.05, 1.3), (L, 1.45), (L - 0.1, 2.45), (L - 0.5, 2.95),
                        (cab_x0 + 0.3, 3.05), (cab_x0, 2.95)]
    prism("cab", cab, -hw + 0.02, hw - 0.02, paint, bevel=0.08, segments=3)
    g = glass()
    side_slab("cabwin", [(cab_x0 + 1.0, 1.8), (L - 0.35, 1.8), (L - 0.25, 2.6),
                         (cab_x0 + 1.0, 2.75)], hw - 0.02, g)
    seam(cab_x0 + 0.9, 0.75, 2.85, hw - 0.02)
    seam(L - 0.25, 0.75, 1.75, hw - 0.02)
    handle(cab_x0 + 1.2, 1.6, hw - 0.02)
    box("windscreen", L - 0.15, L - 0.04, -hw + 0.1, hw - 0.1, 1.6, 2.55, g)
    box("grille", L - 0.04, L + 0.0, -0.8, 0.8, 0.8, 1.35, mat("grille", (30, 30, 32)))
    bumper(L - 0.2, L, 0.38, 0.8, W, rgb=(50, 50, 54))
    mirror(L - 0.2, 2.2, hw, arm=0.3, size=(0.12, 0.4))
    dark = mat("chassis", (30, 30, 32), roughness=0.7)
    box("chassis", 0.1, cab_x0 + 0.2, -0.55, 0.55, 0.6, 0.9, dark)
    # The tank: a cylinder of elliptical section, with dished ends and a walkway on top.
    tank = mat("tank", tank_rgb, metallic=0.6, roughness=0.4)
    tank_obj = cylinder_x("tank", 0.0, 1.95, 1.0, 0.15, cab_x0 - 0.25, tank, verts=48)
    tank_obj.scale = (1.0, 1.2, 1.0)
    for xe, sgn in ((0.15, -1.0), (cab_x0 - 0.25, 1.0)):
        end = cylinder_x("tankend", 0.0, 1.95, 0.95, min(xe, xe + sgn * 0.12),
                         max(xe, xe + sgn * 0.12), tank, verts=48)
        end.scale = (1.0, 1.2, 1.0)
    for xb in (1.0, 3.0, 5.0):
        side_slab("tankband", rect(xb - 0.05, xb + 0.05, 1.05, 2.85), 1.18,
                  mat("bandmetal", (120, 122, 126), metallic=0.7, roughness=0.4), proud=0.01)
    side_slab("hazard", rect(2.7, 3.5, 1.6, 2.1), 1.2, mat("hazard", (240, 140, 10)), proud=0.02)
    box("walkway", 0.6, cab_x0 - 0.6, -0.35, 0.35, 2.95, 3.05, mat("grate", (80, 82, 86)))
    for z in (0.6, 0.85):
        box("guard", 4.0, 6.9, -hw - 0.005, -hw + 0.04, z, z + 0.06,
            mat("guardrail", (200, 200, 205), metallic=0.5, roughness=0.4))
    box("cabinet", 4.1, 6.8, -hw + 0.02, -hw + 0.5, 0.95, 1.3, dark, bevel=0.03)
    lights(L, W, 0.85, 0.55, head_h=0.15, tail_h=0.2, head_len=0.12)
    for xw, twin in ((wheels[0], True), (wheels[1], True), (wheels[2], False)):
        wheel(xw, r, 0.32, hw, 0.55 if twin else 0.32, twin=twin)
    return Vehicle("truck_tanker", L, W, 3.05)


MODELS = {
    # Training set.
    "bus_city": lambda: city_bus(),
    "lorry_box": lambda: box_lorry(),
    "van_panel": lambda: panel_van(),
    # Held-out set: other designs, other colours.
    "coach": lambda: coach(),
    "truck_tanker": lambda: tanker(),
    "minibus": lambda: panel_van(body_rgb=(25, 60, 120), stripe_rgb=(230, 230, 230),
                                 windows_rear=True, name="minibus", L=6.0, H=2.55, W=2.02),
    "car_hatch": lambda: car("car_hatch", body_rgb=(160, 25, 30)),
}


# ---------------------------------------------------------------------------------------------
# Camera, render, crop


def render(vehicle, out_dir):
    scene = bpy.context.scene
    ppm = SPRITE_WIDTH_PX / vehicle.length
    e = math.radians(ELEVATION_DEG)
    # Extent of the orthographic view: the length plus margins; height covers the elevated view.
    res_x = SPRITE_WIDTH_PX + 2 * MARGIN_PX
    view_h_m = vehicle.height * math.cos(e) + vehicle.width * math.sin(e) + 0.8
    res_y = int(math.ceil(view_h_m * ppm)) + 2 * MARGIN_PX
    res_y += res_y % 2
    cam_data = bpy.data.cameras.new("cam")
    cam_data.type = "ORTHO"
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.ortho_scale = res_x / ppm
    cam = bpy.data.objects.new("cam", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    # Aim at the middle of the vehicle's length; vertical centre chosen so the vehicle sits in
    # the frame: ground contact near the bottom margin.
    cx = vehicle.length / 2
    # In the camera's image plane the vertical coordinate of a world point is
    # z cos(e) + y sin(e) (y grows away from the camera).
    v_lo = -vehicle.width / 2 * math.sin(e) - 0.1
    v_c = v_lo + (res_y / ppm) / 2 - MARGIN_PX / ppm
    dist = 60.0
    # Camera position: on the -y side, raised by the elevation, looking along its -z.
    cam.rotation_euler = (math.pi / 2 - e, 0.0, 0.0)
    # Image-plane "up" is (0, sin e, cos e); the view direction is (0, cos e, -sin e).
    up = (0.0, math.sin(e), math.cos(e))
    view = (0.0, math.cos(e), -math.sin(e))
    cam.location = (cx, up[1] * v_c - view[1] * dist, up[2] * v_c - view[2] * dist)
    scene.render.resolution_x = res_x
    scene.render.resolution_y = res_y
    scene.render.resolution_percentage = 100
    # First the vehicle alone (its alpha gives the crop), then with its shadow on the ground.
    ground = shadow_catcher()
    ground.hide_render = True
    raw = os.path.join(out_dir, vehicle.name + ".raw.png")
    scene.render.filepath = raw
    bpy.ops.render.render(write_still=True)
    raw_shadow = None
    if SHADOW:
        ground.hide_render = False
        raw_shadow = os.path.join(out_dir, vehicle.name + ".shadow.png")
        scene.render.filepath = raw_shadow
        bpy.ops.render.render(write_still=True)
    return crop(raw, raw_shadow, os.path.join(out_dir, vehicle.name + ".png"), vehicle, ppm)


def load_pixels(path):
    img = bpy.data.images.load(path)
    w, h = img.size
    px = [0.0] * (w * h * 4)
    img.pixels.foreach_get(px)
    return w, h, px


def crop(raw_path, shadow_path, out_path, vehicle, ppm):
    w, h, px = load_pixels(raw_path)
    alpha = px[3::4]  # rows bottom-up
    x0, x1 = MARGIN_PX, MARGIN_PX + SPRITE_WIDTH_PX
    bottom = None
    top = None
    for row in range(h):
        a = alpha[row * w + x0: row * w + x1]
        if bottom is None and max(a) >= 0.5:
            bottom = row
        if max(a) > 0.02:
            top = row
    if bottom is None or top is None:
        raise RuntimeError(vehicle.name + ": nothing rendered")
    for x in list(range(0, x0)) + list(range(x1, w)):
        col = max(alpha[r * w + x] for r in range(h))
        if col > 0.5:
            raise RuntimeError("%s: something sticks out past the vehicle's ends at x=%d"
                               % (vehicle.name, x))
    out_h = top - bottom + 1
    if shadow_path is not None:
        # The vehicle alone "over" the render with its shadow: the shadow render alone loses
        # alpha on the tyres' lowest rows (where they meet the catcher), the vehicle-only render
        # keeps them opaque.
        _, _, shadow = load_pixels(shadow_path)
        os.remove(shadow_path)
        for i in range(0, len(px), 4):
            av, ash = px[i + 3], shadow[i + 3]
            out_a = av + ash * (1.0 - av)
            if out_a > 0.0:
                for c in range(3):
                    px[i + c] = (px[i + c] * av + shadow[i + c] * ash * (1.0 - av)) / out_a
            px[i + 3] = out_a
    out = bpy.data.images.new(vehicle.name, SPRITE_WIDTH_PX, out_h, alpha=True)
    cropped = []
    for row in range(bottom, top + 1):
        cropped.extend(px[(row * w + x0) * 4:(row * w + x1) * 4])
    out.pixels.foreach_set(cropped)
    out.filepath_raw = out_path
    out.file_format = "PNG"
    out.save()
    os.remove(raw_path)
    if shutil.which("pngquant"):
        subprocess.run(["pngquant", "--force", "--skip-if-larger", "--speed", "1",
                        "--output", out_path, "256", out_path], check=False)
    img_h_m = out_h / ppm
    print("SPRITE %s %dx%d px length %.3f m height %.3f m image height %.3f m %d bytes"
          % (vehicle.name, SPRITE_WIDTH_PX, out_h, vehicle.length, vehicle.height, img_h_m,
             os.path.getsize(out_path)))
    return out_path


def main():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if not argv:
        print("usage: blender -b -P render_sprites.py -- OUTDIR [NAME ...]")
        sys.exit(2)
    out_dir = os.path.abspath(argv[0])
    os.makedirs(out_dir, exist_ok=True)
    names = argv[1:] or list(MODELS)
    for name in names:
        reset_scene()
        _MATS.clear()
        vehicle = MODELS[name]()
        render(vehicle, out_dir)


main()
