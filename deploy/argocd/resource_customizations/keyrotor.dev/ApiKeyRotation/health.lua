-- Argo CD health check for keyrotor.dev/ApiKeyRotation.
--
-- Reads only status.observedGeneration and the conditions keyrotor writes
-- (src/conditions.rs): Ready (summary), Progressing, MigrationStalled.
--   Progressing  keyrotor has not yet seen this generation, the first key is
--                not published yet (Ready=False Initializing/AdoptionPending),
--                or a rotation is in flight (Progressing=True; the published
--                keys stay valid, the message names the stage), and nothing
--                stalls
--   Degraded     Ready=False for any other reason (invalid spec, Secret name
--                clash, lost key material, a hook), or MigrationStalled=True,
--                in the first cycle too
--   Suspended    spec.suspend with nothing wrong
--   Healthy      Ready=True and no rotation in flight: Stable.
local hs = {}

local function condition(status, kind)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function msg(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end

local status = obj.status
local generation = obj.metadata.generation
if status == nil or status.observedGeneration == nil
    or (generation ~= nil and status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for keyrotor to observe the latest spec"
  return hs
end

local ready = condition(status, "Ready")
local stalled = condition(status, "MigrationStalled")
local progressing = condition(status, "Progressing")

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for keyrotor to report readiness"
  return hs
end

local is_stalled = stalled ~= nil and stalled.status == "True"

if ready.status == "False" then
  local first = ready.reason == "Initializing" or ready.reason == "AdoptionPending"
  if first and is_stalled then
    -- The first key waits for something only a person can fix.
    hs.status = "Degraded"
    hs.message = msg(stalled)
  elseif first then
    hs.status = "Progressing"
    hs.message = msg(ready)
  else
    hs.status = "Degraded"
    hs.message = msg(ready)
  end
  return hs
end

if is_stalled then
  hs.status = "Degraded"
  hs.message = msg(stalled)
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = msg(ready)
  return hs
end

if ready.status == "True" then
  if progressing ~= nil and progressing.status == "True" then
    -- Converging, like a Deployment mid-rollout: the old and the new key are
    -- both valid until every consumer has moved.
    hs.status = "Progressing"
    hs.message = "Rotating (" .. msg(progressing) .. "); " .. ready.message
  else
    hs.status = "Healthy"
    hs.message = msg(ready)
  end
  return hs
end

hs.status = "Progressing"
hs.message = msg(ready)
return hs
